// BitNet quantizers: the fp32 references (kernels/ternary.h).
#include "kernels/ternary.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"

namespace qtrain {

void ternary_fake_quant(Tensor out, Tensor w, float lambda) {
  QT_CHECK(out.defined() && w.defined() && out.numel() == w.numel(), "ternary_fake_quant: out and w differ in size");
  QT_DISPATCH_CUDA(w, ternary_fake_quant, out, w, lambda);
  cpu::check_f32(w, "ternary_fake_quant w");
  cpu::check_f32(out, "ternary_fake_quant out");
  const int64_t n = w.numel();
  const float* pw = w.f32();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(pw[i]);
  const float gamma = std::max(float(sum / double(std::max<int64_t>(n, 1))), 1e-5f);
  const float inv = 1.f / gamma;
  float* po = out.f32();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::clamp(std::nearbyint(pw[i] * inv), -1.f, 1.f) / inv;
    po[i] = (1.f - lambda) * pw[i] + lambda * q;  // exact at both ends (pure w, pure q)
  }
}

void int8_act_fake_quant(Tensor out, Tensor x, float lambda) {
  QT_CHECK(out.defined() && x.defined() && out.numel() == x.numel(), "int8_act_fake_quant: out and x differ in size");
  QT_DISPATCH_CUDA(x, int8_act_fake_quant, out, x, lambda);
  cpu::check_f32(x, "int8_act_fake_quant x");
  cpu::check_f32(out, "int8_act_fake_quant out");
  const cpu::MatShape m = cpu::as_matrix(x, "int8_act_fake_quant x");
  const float* px = x.f32();
  float* po = out.f32();
#pragma omp parallel for if (m.rows * m.cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < m.rows; ++r) {
    const float* xr = px + r * m.cols;
    float mx = 0.f;
    for (int64_t c = 0; c < m.cols; ++c) mx = std::max(mx, std::fabs(xr[c]));
    const float s = 127.f / std::max(mx, 1e-5f);
    for (int64_t c = 0; c < m.cols; ++c) {
      const float q = std::clamp(std::nearbyint(xr[c] * s), -128.f, 127.f) / s;
      po[r * m.cols + c] = (1.f - lambda) * xr[c] + lambda * q;
    }
  }
}

}  // namespace qtrain
