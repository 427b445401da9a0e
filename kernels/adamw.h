// One fused AdamW step over a flat F32 buffer (torch.optim.AdamW semantics:
// decoupled weight decay p -= lr*wd*p, bias-corrected moments).
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

struct AdamWParams {
  float lr = 2e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;
  int step = 1;            // 1-based, for bias correction
  float grad_scale = 1.f;  // multiplies g first (gradient clipping folds in here)
};

// p, g, m, v: F32 [n], same device. m and v are updated in place.
// p_bf16 (optional, BF16 [n]): receives the updated p rounded, in the same pass (the
// GPU's products of a full fine-tune read it instead of rounding p at every use).
QT_OP(void, adamw_step, (Tensor p, Tensor g, Tensor m, Tensor v, const AdamWParams& hp, Tensor p_bf16 = Tensor()))

}  // namespace qtrain
