// Small pointwise and reduction ops shared by models and the trainer.
#pragma once
#include <cstdint>

#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

QT_OP(void, add_inplace, (Tensor y, Tensor x))             // y += x       (same numel)
QT_OP(void, axpy, (Tensor y, float a, Tensor x))           // y += a * x   (same numel)
QT_OP(void, scale_inplace, (Tensor y, float a))            // y *= a
QT_OP(void, convert, (Tensor dst, Tensor src))             // dtype conversion, same device, same numel
QT_OP(double, sum_squares, (Tensor x))                     // sum of x^2 in double (grad norms)

// Column blocks of a row-major [N, W] matrix (GPT-2's fused q|k|v projection):
QT_OP(void, copy_cols, (Tensor out, Tensor in, int64_t col_offset))  // out[N,w] = in[N, off:off+w]
QT_OP(void, add_cols, (Tensor out, Tensor in, int64_t col_offset))   // out[N, off:off+w] += in[N,w]

// Inverted dropout with a counter-based hash RNG, so CPU and CUDA draw the same
// mask for the same (seed, offset): element i is kept iff
// uniform(seed, offset + i) >= p, and kept elements are scaled by 1/(1-p).
// mask: U8 [numel], 1 = kept. p == 0 copies x and fills mask with 1.
QT_OP(void, dropout_forward, (Tensor out, Tensor mask, Tensor x, float p, uint64_t seed, uint64_t offset))
QT_OP(void, dropout_backward, (Tensor dx, Tensor dout, Tensor mask, float p))
// The uniform [0,1) draw used above (exposed for tests). Integer-only, so every
// backend reproduces it bit for bit (all arithmetic mod 2^64):
//   mix64(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^ (z >> 31)
//   u = float(mix64(mix64(seed) + (index + 1) * 0x9E3779B97F4A7C15) >> 40) / 2^24
// i.e. the (index+1)-th SplitMix64 output from state mix64(seed). Reference
// values: tests/fixtures/kernels/hash_uniform.json.
float hash_uniform(uint64_t seed, uint64_t index);

}  // namespace qtrain
