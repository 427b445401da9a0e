// One AdamW step, mirroring torch.optim.AdamW's _single_tensor_adamw
// operation by operation (scalars formed in double as Python does, then
// applied to fp32 tensors as torch applies a Python scalar to a float tensor):
//   p *= 1 - lr*wd;  m = lerp(m, g, 1 - beta1);  v = v*beta2 + (1 - beta2)*g*g
//   p += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/cpu/reference_math.h"
#include "kernels/elementwise.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

void adamw_step(Tensor p, Tensor g, Tensor m, Tensor v, const AdamWParams& hp, Tensor p_bf16) {
  // Both backends: flat buffers of p's size on p's device, a 1-based step.
  check_numel_like(g, p, "adamw_step g");
  check_numel_like(m, p, "adamw_step m");
  check_numel_like(v, p, "adamw_step v");
  QT_CHECK(hp.step >= 1, "adamw_step: step is 1-based, got " + std::to_string(hp.step));
  if (p_bf16.defined()) {
    check_numel_like(p_bf16, p, "adamw_step p_bf16");
    QT_CHECK(p_bf16.dtype() == DType::BF16, "adamw_step p_bf16: expected BF16");
  }
  QT_DISPATCH_CUDA(p, adamw_step, p, g, m, v, hp, p_bf16);
  for (const Tensor* t : {&p, &g, &m, &v}) cpu::check_f32(*t, "adamw_step");
  const int64_t n = p.numel();
  const double lr = hp.lr, b1 = hp.beta1, b2 = hp.beta2;
  const float decay = float(1.0 - lr * double(hp.weight_decay));
  const float w1 = float(1.0 - b1);  // lerp weight
  const float beta2 = hp.beta2, c2 = float(1.0 - b2);
  const double bc1 = 1.0 - std::pow(b1, hp.step), bc2 = 1.0 - std::pow(b2, hp.step);
  const float neg_step_size = float(-(lr / bc1));
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float eps = hp.eps, gs = hp.grad_scale;
  float *pp = p.f32(), *pg = g.f32(), *pm = m.f32(), *pv = v.f32();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = gs == 1.f ? pg[i] : pg[i] * gs;
    pp[i] *= decay;
    // torch's vectorised lerp for weight < 0.5: fma(w, end - self, self)
    pm[i] = w1 < 0.5f ? std::fma(w1, gi - pm[i], pm[i]) : std::fma(w1 - 1.f, gi - pm[i], gi);
    pv[i] = pv[i] * beta2 + c2 * gi * gi;
    const float denom = std::sqrt(pv[i]) / bc2_sqrt + eps;
    pp[i] += neg_step_size * (pm[i] / denom);
  }
  if (p_bf16.defined()) convert(p_bf16, p);
}

}  // namespace qtrain
