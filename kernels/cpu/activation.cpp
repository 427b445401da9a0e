// GELU (tanh approximation, HF "gelu_new") and SwiGLU (silu(gate) * up).
// Both are flat elementwise maps: operands need equal element counts, not
// equal shapes (checked here for both backends, before the dispatch).
#include "kernels/activation.h"

#include <cmath>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
}  // namespace

void gelu_forward(Tensor out, Tensor x) {
  check_numel_like(out, x, "gelu out");
  QT_DISPATCH_CUDA(x, gelu_forward, out, x);
  cpu::check_f32(x, "gelu x");
  cpu::check_f32(out, "gelu out");
  const float* px = x.f32();
  float* po = out.f32();
  const int64_t n = x.numel();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float v = px[i];
    // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
    po[i] = 0.5f * v * (1.f + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
  }
}

void gelu_backward(Tensor dx, Tensor dout, Tensor x) {
  check_numel_like(dx, x, "gelu dx");
  check_numel_like(dout, x, "gelu dout");
  QT_DISPATCH_CUDA(x, gelu_backward, dx, dout, x);
  cpu::check_f32(x, "gelu x");
  cpu::check_f32(dx, "gelu dx");
  cpu::check_f32(dout, "gelu dout");
  const float *px = x.f32(), *pd = dout.f32();
  float* pdx = dx.f32();
  const int64_t n = x.numel();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float v = px[i];
    const float t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    const float grad = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * v * v);
    pdx[i] = pd[i] * grad;
  }
}

void swiglu_forward(Tensor out, Tensor gate, Tensor up) {
  check_numel_like(up, gate, "swiglu up");
  check_numel_like(out, gate, "swiglu out");
  QT_DISPATCH_CUDA(gate, swiglu_forward, out, gate, up);
  cpu::check_f32(gate, "swiglu gate");
  cpu::check_f32(up, "swiglu up");
  cpu::check_f32(out, "swiglu out");
  const float *pg = gate.f32(), *pu = up.f32();
  float* po = out.f32();
  const int64_t n = gate.numel();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) po[i] = pg[i] * sigmoid(pg[i]) * pu[i];
}

void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  check_numel_like(up, gate, "swiglu up");
  check_numel_like(dout, gate, "swiglu dout");
  check_numel_like(dgate, gate, "swiglu dgate");
  check_numel_like(dup, gate, "swiglu dup");
  QT_DISPATCH_CUDA(gate, swiglu_backward, dgate, dup, dout, gate, up);
  cpu::check_f32(gate, "swiglu gate");
  cpu::check_f32(up, "swiglu up");
  cpu::check_f32(dout, "swiglu dout");
  cpu::check_f32(dgate, "swiglu dgate");
  cpu::check_f32(dup, "swiglu dup");
  const float *pg = gate.f32(), *pu = up.f32(), *pd = dout.f32();
  float *pdg = dgate.f32(), *pdu = dup.f32();
  const int64_t n = gate.numel();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float g = pg[i], s = sigmoid(g), d = pd[i], u = pu[i];
    // silu'(g) = s + g s (1 - s)
    pdg[i] = d * u * (s + g * s * (1.f - s));
    pdu[i] = d * g * s;
  }
}

}  // namespace qtrain
