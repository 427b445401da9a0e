#include "models/bitlinear_weight.h"

#include <algorithm>

#include "kernels/matmul.h"
#include "kernels/ternary.h"

namespace qtrain {

void BitLinearWeight::set_step(int64_t step) {
  lambda_ = warmup_ > 0 ? std::min(1.f, float(step) / float(warmup_)) : 1.f;
}

Tensor BitLinearWeight::quantized_weight(DType dt) const {
  Tensor q = Tensor::empty(w_.shape(), dt, w_.device());
  ternary_fake_quant(q, w_, lambda_);
  return q;
}

Tensor BitLinearWeight::product_input(Tensor x) const {
  Tensor xn = subln_ ? subln_norm_.forward(x, lambda_) : x;
  Tensor xq = Tensor::empty(x.shape(), x.dtype(), x.device());
  int8_act_fake_quant(xq, xn, lambda_);
  return xq;
}

void BitLinearWeight::forward(Tensor y, Tensor x) const {
  gemm(y, product_input(x), quantized_weight(x.dtype()), false, true);
}

void BitLinearWeight::backward_input(Tensor, Tensor, float) const {
  QT_CHECK(false, "BitLinear: the input gradient needs the layer input (backward_input_from)");
}

void BitLinearWeight::backward_input_from(Tensor dx, Tensor dy, Tensor x, float beta) const {
  const Tensor wq = quantized_weight(dy.dtype());
  if (!subln_) return gemm(dx, dy, wq, false, false, 1.f, beta);  // Q8 is straight-through
  const int64_t n = x.numel() / in_features();
  Tensor dxn = Tensor::empty({n, in_features()}, dy.dtype(), dy.device());
  gemm(dxn, dy, wq, false, false);
  subln_norm_.backward(dx, dxn, x, lambda_, beta);
}

void BitLinearWeight::accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const {
  // straight-through: dW = dL/dQ3(W) = dy^T Q8(SubLN(x))
  gemm(dw, dy, product_input(x), true, false, 1.f, 1.f);
}

}  // namespace qtrain
