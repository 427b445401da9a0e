// SwiGLU's forward math, shared by the pointwise op (activation.cu) and the 4-bit decode GEMV that
// makes it in its epilogue (quant_matmul.cu, add_rmsnorm_matmul_4bit_swiglu): one definition, so the
// two give the same bits.
#pragma once
#include <cuda_runtime.h>

namespace qtrain::cuda {

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + expf(-g)); }

// silu(gate) * up, in F32 from the two products' (rounded) values.
__device__ __forceinline__ float swiglu_value(float gate, float up) { return gate * sigmoid(gate) * up; }

}  // namespace qtrain::cuda
