#include "models/subln.h"

#include <vector>

#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/ternary.h"  // kSubLnEps, shared with the fused SubLN + 8-bit quantization

namespace qtrain {

Tensor SubLn::ones(int64_t n, Device d) const {
  if (!ones_.defined() || ones_.numel() != n || ones_.device() != d) {
    std::vector<float> v(size_t(n), 1.f);
    ones_ = Tensor::wrap(v.data(), {n}, DType::F32).to(d);
  }
  return ones_;
}

Tensor SubLn::forward(Tensor x, float lambda, Tensor* rstd) const {
  const int64_t cols = x.size(-1), n = x.numel() / cols;
  Tensor xn = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor r = Tensor::empty({n}, DType::F32, x.device());
  rmsnorm_forward(xn, r, x, ones(cols, x.device()), kSubLnEps);
  if (rstd) *rstd = r;
  if (lambda < 1.f) {  // (1 - lambda) x + lambda SubLN(x)
    scale_inplace(xn, lambda);
    axpy(xn, 1.f - lambda, x);
  }
  return xn;
}

void SubLn::backward(Tensor dx, Tensor dxn, Tensor x, float lambda, float beta) const {
  Tensor rstd;
  forward(x, lambda, &rstd);
  Tensor d = Tensor::empty(dxn.shape(), dxn.dtype(), dxn.device());
  rmsnorm_backward(d, Tensor(), dxn, x, ones(x.size(-1), x.device()), rstd);
  // d/dx of (1 - lambda) x + lambda SubLN(x)
  if (lambda < 1.f) {
    scale_inplace(d, lambda);
    axpy(d, 1.f - lambda, dxn);
  }
  if (beta == 0.f) return dx.view(d.shape()).copy_from(d);
  add_inplace(dx, d);
}

}  // namespace qtrain
