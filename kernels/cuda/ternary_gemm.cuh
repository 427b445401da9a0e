// The fused W2A8 training product for short reductions (ternary_gemm.cu).
#pragma once
#include "kernels/ternary.h"

namespace qtrain::cuda {

// y = the W2A8 product of kernels/ternary.h, bit for bit the general path's,
// when ternary_gemm_fused_shape(w.rows, w.cols) and x and y are F32 or BF16
// and 16-byte aligned; false (nothing launched) otherwise. x rows are kept
// whole in shared memory as int8: 64 x (K + 16) bytes.
bool ternary_gemm(Tensor y, Tensor x, const TernaryTensor& w);

}  // namespace qtrain::cuda
