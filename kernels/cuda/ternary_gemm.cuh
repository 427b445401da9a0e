// The fused W2A8 training product for short reductions (ternary_gemm.cu).
#pragma once
#include "kernels/ternary.h"

namespace qtrain::cuda {

// y = the W2A8 product of kernels/ternary.h, bit for bit the general path's,
// when ternary_gemm_fused_shape(w.rows, w.cols), x and y are F32 or BF16 (x
// 16-byte and y 8-byte aligned) and the GPU runs the kernel's sm_90a code;
// false (nothing launched) otherwise. A block keeps 64 x rows whole in shared
// memory as int8: 64 K bytes, plus 48 KB of weight stages.
bool ternary_gemm(Tensor y, Tensor x, const TernaryTensor& w);

}  // namespace qtrain::cuda
