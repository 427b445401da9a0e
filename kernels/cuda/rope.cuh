// RoPE's pieces shared by rope.cu and the 4-bit decode GEMV that rotates q and k in its epilogue
// (quant_matmul.cu, add_rmsnorm_matmul_4bit_rope_kv): the (cos, sin) table and the rotation of one
// pair, one definition each, so that both give the same bits.
#pragma once
#include <cuda_runtime.h>

namespace qtrain::cuda {

// One pair (x1, x2) = (x[i], x[i + D/2]) rotated by (c, s).
__device__ __forceinline__ float2 rope_rotate(float x1, float x2, float c, float s) {
  return make_float2(x1 * c - x2 * s, x2 * c + x1 * s);
}

// The (cos, sin) of every (pos, i) for pos < T at (D, theta): entry pos * D/2 + i (rope.cu).
const float2* rope_table(int T, int D, float theta);

}  // namespace qtrain::cuda
