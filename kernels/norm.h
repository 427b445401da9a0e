// LayerNorm (GPT-2) and RMSNorm (LLaMA), forward and backward.
// Statistics are computed in F32 on every backend, as HF does.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// x, out: [N,C]; w, b: [C]; mean, rstd: F32 [N], saved for backward.
QT_OP(void, layernorm_forward, (Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps))
// dx[N,C] is overwritten, or with accumulate_dx added to (the residual stream's gradient:
// one pass instead of the norm's dx and an add); dw, db are accumulated (+=), or skipped
// when undefined (frozen).
QT_OP(void, layernorm_backward, (Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                                 Tensor rstd, bool accumulate_dx = false))

// out = x * rsqrt(mean(x^2) + eps) * w.  x, out: [N,C]; w: [C]; rstd: F32 [N].
QT_OP(void, rmsnorm_forward, (Tensor out, Tensor rstd, Tensor x, Tensor w, float eps))
// The residual add before a norm, fused: x += r (each sum rounded to x's dtype,
// as add_inplace stores it), then the norm of the stored sum into out: the
// same bits as add_inplace(x, r) followed by the norm, in one pass on the GPU.
QT_OP(void, add_layernorm_forward, (Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor r, Tensor w, Tensor b,
                                    float eps))
QT_OP(void, add_rmsnorm_forward, (Tensor out, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps))

QT_OP(void, rmsnorm_backward, (Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd,
                               bool accumulate_dx = false))

}  // namespace qtrain
