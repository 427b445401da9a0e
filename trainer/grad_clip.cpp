#include "trainer/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "kernels/elementwise.h"

namespace qtrain {

bool GradClip::finite() const { return std::isfinite(norm); }

GradClip clip_grad_norm(Tensor grads, float pre_scale, float max_norm) {
  GradClip c;
  c.norm = std::sqrt(sum_squares(grads)) * std::abs(double(pre_scale));
  c.grad_scale = pre_scale;
  if (max_norm > 0 && std::isfinite(c.norm)) {
    // torch computes the coefficient in fp32: max_norm / (total_norm + 1e-6), clamped to 1.
    float coef = max_norm / (float(c.norm) + 1e-6f);
    c.grad_scale = pre_scale * std::min(coef, 1.f);
  }
  return c;
}

}  // namespace qtrain
