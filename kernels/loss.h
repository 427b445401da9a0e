// The LM head fused with softmax cross-entropy, chunked over rows so the
// [N, V] logits never exist whole in memory.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

constexpr int32_t kIgnoreIndex = -100;

// x: [N,C] final hidden states; w: [V,C] (lm_head, or the tied wte); targets: I32 [N],
// kIgnoreIndex rows contribute nothing. Returns the SUM of per-row losses (natural
// log), accumulated in double. If dx is defined it is overwritten with
// grad_scale * d(sum)/dx; if dw is defined, grad_scale * d(sum)/dw is added to it.
// (grad_scale is usually 1 / global count of predicted tokens.)
QT_OP(double, lm_head_cross_entropy, (Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale))

}  // namespace qtrain
