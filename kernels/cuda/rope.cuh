// RoPE's pieces shared by rope.cu and the 4-bit decode GEMV that rotates q and k in its epilogue
// (quant_matmul.cu, add_rmsnorm_matmul_4bit_rope_kv): the (cos, sin) table and the rotation of one
// pair, one definition each, so that both give the same bits.
#pragma once
#include <cuda_runtime.h>

namespace qtrain::cuda {

// One pair (x1, x2) = (x[i], x[i + D/2]) rotated by (c, s). Each product and sum rounded on its own
// (the _rn intrinsics are never contracted into an FMA): written as x1 * c - x2 * s, whether and which
// product the compiler fused depended on the code around it, so the RoPE kernel and the GEMV's epilogue
// gave results one F32 ulp apart, now and then a BF16 ulp after rounding (a LLaMA-7B NF4 decode's
// greedy tokens changed; H100, session 28). This is also how the CPU reference computes it.
__device__ __forceinline__ float2 rope_rotate(float x1, float x2, float c, float s) {
  return make_float2(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)), __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
}

// The (cos, sin) of every (pos, i) for pos < T at (D, theta): entry pos * D/2 + i (rope.cu).
const float2* rope_table(int T, int D, float theta);

}  // namespace qtrain::cuda
