// SwiGLU's value, silu(g) * u = g sigmoid(g) u in F32: one definition for swiglu_forward
// (activation.cu) and the 4-bit GEMV that makes LLaMA's down-projection input itself
// (quant_matmul.cu), so that both give the same bits.
#pragma once

namespace qtrain::cuda {

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + expf(-g)); }
__device__ __forceinline__ float swiglu_value(float g, float u) { return g * sigmoid(g) * u; }

}  // namespace qtrain::cuda
