#include "models/bitlinear_weight.h"

#include <algorithm>

#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/ternary.h"

namespace qtrain {

namespace {
constexpr float kSubLnEps = 1e-5f;
}

void BitLinearWeight::set_step(int64_t step) {
  lambda_ = warmup_ > 0 ? std::min(1.f, float(step) / float(warmup_)) : 1.f;
}

Tensor BitLinearWeight::ones(int64_t n) const {
  if (!ones_.defined()) {
    std::vector<float> v(size_t(n), 1.f);
    ones_ = Tensor::wrap(v.data(), {n}, DType::F32).to(w_.device());
  }
  return ones_;
}

Tensor BitLinearWeight::quantized_weight(DType dt) const {
  Tensor q = Tensor::empty(w_.shape(), dt, w_.device());
  ternary_fake_quant(q, w_, lambda_);
  return q;
}

Tensor BitLinearWeight::normed(Tensor x, Tensor* rstd) const {
  if (!subln_) return x;
  const int64_t n = x.numel() / in_features();
  Tensor xn = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor r = Tensor::empty({n}, DType::F32, x.device());
  rmsnorm_forward(xn, r, x, ones(in_features()), kSubLnEps);
  if (rstd) *rstd = r;
  if (lambda_ < 1.f) {  // (1 - lambda) x + lambda SubLN(x)
    scale_inplace(xn, lambda_);
    axpy(xn, 1.f - lambda_, x);
  }
  return xn;
}

Tensor BitLinearWeight::product_input(Tensor x) const {
  Tensor xn = normed(x, nullptr);
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
  Tensor rstd;
  normed(x, &rstd);
  Tensor dnorm = Tensor::empty(dxn.shape(), dxn.dtype(), dxn.device());
  rmsnorm_backward(dnorm, Tensor(), dxn, x, ones(in_features()), rstd);
  // d/dx of (1 - lambda) x + lambda SubLN(x)
  scale_inplace(dnorm, lambda_);
  axpy(dnorm, 1.f - lambda_, dxn);
  if (beta == 0.f) return dx.view(dnorm.shape()).copy_from(dnorm);
  add_inplace(dx, dnorm);
}

void BitLinearWeight::accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const {
  // straight-through: dW = dL/dQ3(W) = dy^T Q8(SubLN(x))
  gemm(dw, dy, product_input(x), true, false, 1.f, 1.f);
}

}  // namespace qtrain
