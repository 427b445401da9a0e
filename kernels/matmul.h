// Dense matrix products. Row-major everywhere.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// c[M,N] = alpha * op(a) @ op(b) + beta * c
//   a: [M,K], or [K,M] when trans_a      b: [K,N], or [N,K] when trans_b
// Higher-rank tensors are flattened to 2-D on their last dim ([B,T,C] -> [B*T,C]).
// beta = 1 accumulates (parameter gradients). CPU: F32 only. CUDA: BF16 or F32
// operands (mixed allowed), F32 accumulation, c in BF16 or F32.
QT_OP(void, gemm, (Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha = 1.f, float beta = 0.f))

// y[N,out] = x[N,in] @ w[out,in]^T + bias[out]: a biased Linear's product.
// CPU: gemm then add_bias. CUDA: the bias is added in the GEMM's epilogue, in
// F32 before y is rounded (no pass over y), as BF16 when y is BF16 (cuBLASLt's
// bias has D's type).
QT_OP(void, gemm_bias, (Tensor y, Tensor x, Tensor w, Tensor bias))
// y[N,out] += bias[out]
QT_OP(void, add_bias, (Tensor y, Tensor bias))
// dbias[out] += sum over rows of dy[N,out]
QT_OP(void, bias_backward, (Tensor dbias, Tensor dy))

}  // namespace qtrain
