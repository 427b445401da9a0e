// Attention on a fused q|k|v projection (kernels/attention.h): cuDNN reads the
// packed rows in place on the GPU; every other path splits the columns and runs
// the ordinary ops, so the CPU reference and qtrain's own kernels share this code.
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {

// out [B,T,H,D]; qkv [B,T,3*H*D] on out's device; lse B*H*T values.
void check_packed(const Tensor& qkv, const Tensor& out, const Tensor& lse, const char* what) {
  QT_CHECK(out.defined() && out.ndim() == 4, std::string(what) + " out: expected [B,T,H,D]");
  const int64_t B = out.size(0), T = out.size(1), C = out.size(2) * out.size(3);
  check_on(qkv, out, what);
  QT_CHECK(qkv.ndim() == 3 && qkv.size(0) == B && qkv.size(1) == T && qkv.size(2) == 3 * C,
           std::string(what) + ": qkv" + shape_str(qkv.shape()) + " for out" + shape_str(out.shape()) +
               " (expected [B,T,3*H*D])");
  check_len(lse, out, B * out.size(2) * T, (std::string(what) + " lse").c_str());
}

struct Split {
  Tensor q, k, v;
};

// q, k, v as their own [B,T,H,D] tensors, copied out of qkv's columns.
Split split(const Tensor& qkv, const Tensor& out) {
  const int64_t C = out.size(2) * out.size(3), N = out.size(0) * out.size(1);
  Split s;
  Tensor rows = qkv.view({N, 3 * C});
  Tensor* parts[3] = {&s.q, &s.k, &s.v};
  for (int i = 0; i < 3; ++i) {
    *parts[i] = Tensor::empty(out.shape(), qkv.dtype(), qkv.device());
    copy_cols(parts[i]->view({N, C}), rows, i * C);
  }
  return s;
}

}  // namespace

void attention_forward_qkv(Tensor out, Tensor lse, Tensor qkv) {
  check_packed(qkv, out, lse, "attention_forward_qkv");
#ifdef QTRAIN_HAS_CUDA
  if (qkv.is_cuda() && cuda::attention_forward_qkv(out, lse, qkv)) return;
#endif
  const Split s = split(qkv, out);
  attention_forward(out, lse, s.q, s.k, s.v);
}

void attention_backward_qkv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse) {
  check_packed(qkv, out, lse, "attention_backward_qkv");
  check_like(dqkv, qkv, "attention_backward_qkv dqkv");
  check_like(dout, out, "attention_backward_qkv dout");
#ifdef QTRAIN_HAS_CUDA
  if (qkv.is_cuda() && cuda::attention_backward_qkv(dqkv, dout, qkv, out, lse)) return;
#endif
  const Split s = split(qkv, out);
  Tensor dq = Tensor::empty(out.shape(), dqkv.dtype(), dqkv.device());
  Tensor dk = Tensor::empty(out.shape(), dqkv.dtype(), dqkv.device());
  Tensor dv = Tensor::empty(out.shape(), dqkv.dtype(), dqkv.device());
  attention_backward(dq, dk, dv, dout, s.q, s.k, s.v, out, lse);
  const int64_t C = out.size(2) * out.size(3), N = out.size(0) * out.size(1);
  Tensor rows = dqkv.view({N, 3 * C});
  rows.zero_();
  add_cols(rows, dq.view({N, C}), 0);
  add_cols(rows, dk.view({N, C}), C);
  add_cols(rows, dv.view({N, C}), 2 * C);
}

}  // namespace qtrain
