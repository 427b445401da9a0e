#include "models/base_weight.h"

#include "kernels/matmul.h"

namespace qtrain {

void BaseWeight::accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const { gemm(dw, dy, x, true, false, 1.f, 1.f); }

void BaseWeight::forward_bias(Tensor y, Tensor x, Tensor bias) const {
  forward(y, x);
  add_bias(y, bias);
}

void DenseWeight::forward(Tensor y, Tensor x) const { gemm(y, x, operand(), false, true); }

void DenseWeight::forward_bias(Tensor y, Tensor x, Tensor bias) const { gemm_bias(y, x, operand(), bias); }

void DenseWeight::backward_input(Tensor dx, Tensor dy, float beta) const {
  gemm(dx, dy, operand(), false, false, 1.f, beta);
}

}  // namespace qtrain
