// Global gradient-norm clipping as torch.nn.utils.clip_grad_norm_, folded
// into the optimizer's grad_scale instead of rewriting the gradient buffer.
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

struct GradClip {
  double norm = 0;         // L2 norm of (pre_scale * grads), before clipping
  float grad_scale = 1.f;  // pre_scale * clip coefficient: pass to AdamW::step
  bool finite() const;     // false for inf/nan norms (a step should be skipped)
};

// grads: the flat F32 gradient buffer (sums, on any device). pre_scale turns
// them into the true gradient (e.g. 1 / global token count). max_norm <= 0
// disables clipping. The coefficient is min(1, max_norm / (norm + 1e-6)).
GradClip clip_grad_norm(Tensor grads, float pre_scale, float max_norm);

}  // namespace qtrain
