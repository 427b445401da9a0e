// LowRA's mixed-precision base (kernels/quant/lowra.h: 1, 2 or 4 bits per
// output channel, a 16-slot level table per channel, an F32 absmax per 64
// weights) dequantized into a dense matrix: the GPU product dequantizes into a
// BF16 scratch and runs cuBLASLt, as the other dequantized bases do
// (models/lowra_weight.h).
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out [rows, cols] = lut[r * 16 + code(r, c)] * absmax[r * cols / 64 + c / 64], one F32 product
// (the GPU computes the same F32 value, then stores it as out's dtype). codes: U8, row r's codes
// LSB first at its own width from byte row_offset[r]; row_offset: I32 [rows]; bits: U8 [rows]
// (1, 2 or 4); lut: F32 [rows * 16]; absmax: F32 [rows * cols / 64]; all on out's device.
// cols a multiple of 64. CPU: out F32. CUDA: out BF16 or F32.
QT_OP(void, dequantize_lowra, (Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax))

// The decode product, read straight from the packed layout (no dense copy of W):
// y [M, rows] = x [M, cols] W^T for M <= kLowraMatvecRows, W as above.
// CPU: x, y F32; each row dequantized (the reference above), then dotted in F32.
// CUDA: x BF16 (16-byte aligned), y BF16 or F32; a warp per output channel, F32 sums.
constexpr int64_t kLowraMatvecRows = 8;
QT_OP(void, lowra_matvec, (Tensor y, Tensor x, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax))

}  // namespace qtrain
