// One fused AdamW step over a flat F32 buffer, in torch.optim.AdamW's order of
// operations (_single_tensor_adamw): decay, lerp of m, v update, then the
// bias-corrected step. Bias corrections are computed once on the host in double.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/adamw.h"

namespace qtrain::cuda {
namespace {

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, bf16* p_bf16, int64_t n, float lr,
                             float beta1, float beta2, float eps, float decay, float step_size, float bc2_sqrt,
                             float grad_scale) {
  QT_GRID_STRIDE(i, n) {
    float gi = g[i] * grad_scale;
    float pi = p[i] * decay;
    float mi = m[i] + (1.f - beta1) * (gi - m[i]);
    float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * mi / denom;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(p[i]);
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adamw_step(Tensor p, Tensor g, Tensor m, Tensor v, const AdamWParams& hp, Tensor p_bf16) {
  for (const Tensor* t : {&p, &g, &m, &v}) check_cuda_dtype(*t, DType::F32, "adamw_step");
  int64_t n = p.numel();
  if (!n) return;
  double bc1 = 1.0 - std::pow(double(hp.beta1), hp.step);
  double bc2 = 1.0 - std::pow(double(hp.beta2), hp.step);
  float step_size = float(double(hp.lr) / bc1);
  float bc2_sqrt = float(std::sqrt(bc2));
  float decay = 1.f - hp.lr * hp.weight_decay;
  bf16* pb = p_bf16.defined() ? (check_cuda_dtype(p_bf16, DType::BF16, "adamw_step p_bf16"),
                                 static_cast<bf16*>(p_bf16.raw()))
                              : nullptr;
  adamw_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(p.f32(), g.f32(), m.f32(), v.f32(), pb, n, hp.lr, hp.beta1,
                                                         hp.beta2, hp.eps, decay, step_size, bc2_sqrt, hp.grad_scale);
  CUDA_CHECK_LAUNCH("adamw_step");
}

}  // namespace qtrain::cuda
