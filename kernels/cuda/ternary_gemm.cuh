// The fused W2A8 training product (ternary_gemm.cu).
#pragma once
#include "kernels/ternary.h"

namespace qtrain::cuda {

// y = ternary_matmul_q8(y, act, w) (kernels/ternary.h), bit for bit the general
// path's, when ternary_gemm_fused_shape(w.rows, w.cols), y is F32 or BF16 (8-byte
// aligned, act.q 16-byte), the driver encodes act.q's tensor map and the GPU
// runs the kernel's sm_90a code; false (nothing launched) otherwise.
bool ternary_gemm_q8(Tensor y, const Q8Rows& act, const TernaryTensor& w);

}  // namespace qtrain::cuda
