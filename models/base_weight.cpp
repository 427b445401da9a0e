#include "models/base_weight.h"

#include "kernels/matmul.h"

namespace qtrain {

void BaseWeight::accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const { gemm(dw, dy, x, true, false, 1.f, 1.f); }

void DenseWeight::forward(Tensor y, Tensor x) const { gemm(y, x, w_, false, true); }

void DenseWeight::backward_input(Tensor dx, Tensor dy, float beta) const { gemm(dx, dy, w_, false, false, 1.f, beta); }

}  // namespace qtrain
