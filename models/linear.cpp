#include "models/linear.h"

#include <cstdint>
#include <cstdlib>

#include "kernels/activation.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/lora_decode.h"
#include "kernels/quant_matmul.h"
#include "kernels/ternary.h"
#include "models/ternary_weight.h"

namespace qtrain {

void Linear::declare_trainable(ParamSet& ps) {
  w_param_ = ps.declare(name_ + ".weight", {out_, in_}, true, layer_);
  if (has_bias_) b_param_ = ps.declare(name_ + ".bias", {out_}, false, layer_);
}

void Linear::bind(ParamSet& ps, const std::function<std::unique_ptr<BaseWeight>(Tensor master)>& wrap) {
  if (!trainable()) return;
  weight_ = wrap ? wrap(ps[w_param_].value) : std::make_unique<DenseWeight>(ps[w_param_].value, &ps[w_param_].compute);
  dw_ = ps[w_param_].grad;
  if (has_bias_) {
    bias_ = ps[b_param_].value;
    bias_compute_ = &ps[b_param_].compute;
    db_ = ps[b_param_].grad;
  }
}

void Linear::set_frozen(std::unique_ptr<BaseWeight> w, Tensor bias) {
  QT_CHECK(!trainable(), name_ + ": set_frozen on a trainable layer");
  QT_CHECK(w->out_features() == out_ && w->in_features() == in_, name_ + ": weight shape mismatch");
  weight_ = std::move(w);
  bias_ = std::move(bias);
}

void Linear::forward(Tensor y, Tensor x, bool train, uint64_t dropout_seed) {
  int64_t n = x.numel() / in_;
  Tensor x2 = x.view({n, in_}), y2 = y.view({n, out_});
  Tensor xb = x2;
  if (adapter_ && adapter_->scales_input()) {
    xb = Tensor::empty(x2.shape(), x2.dtype(), x2.device());
    adapter_->scale_input(xb, x2);
  }
  const bool with_base = bias_with_base();
  if (with_base)
    weight_->forward_bias(y2, xb, epilogue_bias());
  else
    weight_->forward(y2, xb);
  finish_forward(y2, x2, train, dropout_seed, with_base);
}

void Linear::finish_forward(Tensor y2, Tensor x2, bool train, uint64_t dropout_seed, bool bias_done) {
  const bool bias_first = !adapter_ || adapter_->sees_bias();
  if (bias_.defined() && bias_first && !bias_done) add_bias(y2, bias_);
  if (adapter_) adapter_->forward(y2, x2, *weight_, train, dropout_seed);
  if (bias_.defined() && !bias_first) add_bias(y2, bias_);
}

void Linear::forward_shared(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, Tensor x, bool train,
                            const std::vector<uint64_t>& dropout_seeds) {
  forward_shared_from(ls, ys, x, nullptr, train, dropout_seeds);
}

Tensor Linear::forward_shared(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, const InputOp& op,
                              bool train, const std::vector<uint64_t>& dropout_seeds) {
  return forward_shared_from(ls, ys, op.x, &op, train, dropout_seeds);
}

Linear::InputOp Linear::rmsnorm_input(Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps) {
  InputOp op;
  op.x = h;
  op.alone = [=] {
    if (r.defined())
      add_rmsnorm_forward(h, rstd, x, r, w, eps);
    else
      rmsnorm_forward(h, rstd, x, w, eps);
    return x;
  };
  op.with_products = [=](const std::vector<Tensor>& ys, const std::vector<const Quant4Tensor*>& ws) {
    const int64_t C = x.size(-1), n = x.numel() / C;
    return add_rmsnorm_matmul_4bit_shared(ys, h.view({n, C}), rstd, x.view({n, C}), r.defined() ? r.view({n, C}) : Tensor(),
                                          w, eps, ws);
  };
  op.with_swiglu = [=](Tensor s, const Quant4Tensor& gate, const Quant4Tensor& up) {
    const int64_t C = x.size(-1), n = x.numel() / C;
    return add_rmsnorm_matmul_4bit_swiglu(s.view({n, gate.rows}), h.view({n, C}), rstd, x.view({n, C}),
                                          r.defined() ? r.view({n, C}) : Tensor(), w, eps, gate, up);
  };
  op.with_rope_kv = [=](Tensor q, Tensor k, Tensor v, const Quant4Tensor& wq, const Quant4Tensor& wk,
                        const Quant4Tensor& wv, Tensor kc, Tensor vc, float theta, SeqPos pos) {
    const int64_t C = x.size(-1), n = x.numel() / C;
    return add_rmsnorm_matmul_4bit_rope_kv(q, k, v, h.view({n, C}), rstd, x.view({n, C}),
                                           r.defined() ? r.view({n, C}) : Tensor(), w, eps, wq, wk, wv, kc, vc, theta, pos);
  };
  return op;
}

// The 4-bit GEMV weights of ls at x, where the products may be folded into an epilogue (RoPE + the cache
// append, SwiGLU): outside training, no adapter or bias on any of them, one input width, every base a 4-bit
// GEMV at this x. Empty where any of that fails (the layers then take forward_shared's path).
static std::vector<const Quant4Tensor*> foldable_4bit(const std::vector<Linear*>& ls, Tensor x, bool train) {
  if (train || ls.empty()) return {};
  for (const Linear* l : ls)
    if (l->adapter() || l->bias().defined() || l->in() != ls[0]->in()) return {};
  const Tensor x2 = x.view({x.numel() / ls[0]->in(), ls[0]->in()});
  std::vector<const Quant4Tensor*> ws;
  for (const Linear* l : ls) {
    const Quant4Tensor* w = l->base().as_4bit_gemv(x2);
    if (!w) return {};
    ws.push_back(w);
  }
  return ws;
}

Tensor Linear::forward_rope_kv(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, const InputOp& op,
                               bool train, const std::vector<uint64_t>& dropout_seeds, Tensor kc, Tensor vc,
                               float theta, SeqPos pos, bool* appended) {
  const std::vector<const Quant4Tensor*> w =
      op.with_rope_kv && ls.size() == 3 && ys.size() == 3 ? foldable_4bit(ls, op.x, train) : std::vector<const Quant4Tensor*>{};
  *appended = !w.empty();
  if (*appended) return op.with_rope_kv(ys[0], ys[1], ys[2], *w[0], *w[1], *w[2], kc, vc, theta, pos);
  return forward_shared(ls, ys, op, train, dropout_seeds);
}

Tensor Linear::forward_swiglu(Linear& gate, Linear& up, Tensor s, const std::vector<Tensor>& ys, const InputOp& op,
                              bool train, bool keep_products, const std::vector<uint64_t>& dropout_seeds) {
  if (!keep_products && op.with_swiglu && gate.out_ == up.out_) {
    const std::vector<const Quant4Tensor*> w = foldable_4bit({&gate, &up}, op.x, train);
    if (!w.empty()) return op.with_swiglu(s, *w[0], *w[1]);
  }
  const Tensor made = forward_shared({&gate, &up}, ys, op, train, dropout_seeds);
  swiglu_forward(s, ys[0], ys[1]);
  return made;
}

Tensor Linear::forward_shared_from(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, Tensor x,
                                   const InputOp* op, bool train, const std::vector<uint64_t>& dropout_seeds) {
  QT_CHECK(!ls.empty() && ls.size() == ys.size() && ls.size() == dropout_seeds.size(),
           "Linear::forward_shared: one output and seed per layer");
  const int64_t in = ls[0]->in_, n = x.numel() / in;
  const auto make_alone = [&] { return op ? op->alone() : Tensor(); };
  for (const Linear* l : ls)
    if (l->in_ != in || (l->adapter_ && l->adapter_->scales_input())) {  // each its own input: one by one
      const Tensor made = make_alone();
      for (size_t i = 0; i < ls.size(); ++i) ls[i]->forward(ys[i], x, train, dropout_seeds[i]);
      return made;
    }
  const Tensor x2 = x.view({n, in});
  std::vector<Tensor> y2;
  for (size_t i = 0; i < ls.size(); ++i) y2.push_back(ys[i].view({n, ls[i]->out_}));
  // The base products: one 4-bit GEMV launch when every base is one at this x.
  std::vector<const Quant4Tensor*> qs;
  for (const Linear* l : ls)
    if (const Quant4Tensor* q = ls.size() <= size_t(kGemv4MaxShared) ? l->weight_->as_4bit_gemv(x2) : nullptr)
      qs.push_back(q);
  Tensor made;
  if (qs.size() != ls.size()) made = make_alone();
  // The bias with the base product where forward would put it there (the dense GEMM's epilogue).
  std::vector<char> bias_done(ls.size(), 0);
  // W2A8 bases (BitNet) with one SubLN setting: x's int8 rows made once for all of them.
  std::vector<const TernaryWeight*> ts;
  if (const TernaryWeight* t0 = ls[0]->weight_->as_w2a8())
    for (const Linear* l : ls)
      if (const TernaryWeight* t = l->weight_->as_w2a8(); t && t->subln() == t0->subln()) ts.push_back(t);
  if (qs.size() == ls.size() && op) {
    made = op->with_products(y2, qs);
  } else if (qs.size() == ls.size()) {
    matmul_4bit_shared(y2, x2, qs);
  } else if (ls.size() > 1 && ts.size() == ls.size()) {
    const Q8Rows act = Q8Rows::empty(n, in, x2.device());
    quantize_act_q8(act, x2, ts[0]->subln());
    for (size_t i = 0; i < ls.size(); ++i) ts[i]->forward_q8(y2[i], act);
  } else {
    for (size_t i = 0; i < ls.size(); ++i) {
      bias_done[i] = ls[i]->bias_with_base();
      if (bias_done[i])
        ls[i]->weight_->forward_bias(y2[i], x2, ls[i]->epilogue_bias());
      else
        ls[i]->weight_->forward(y2[i], x2);
    }
  }
  // The adapters: plain LoRA outside training as one lora_decode_shared when the factors allow it.
  std::vector<Tensor> as, bs;
  std::vector<float> scales;
  // QT_LORA_DECODE_ROWS=N caps the rows the shared op takes (more go per adapter through cuBLAS): for measuring.
  static const int64_t max_rows = [] {
    const char* e = std::getenv("QT_LORA_DECODE_ROWS");
    return e && *e ? std::atoll(e) : kLoraDecodeMaxRows;
  }();
  bool shared = !train && ls.size() <= size_t(kLoraDecodeMaxShared) && n <= max_rows;
  for (const Linear* l : ls) {
    Tensor a, b;
    float s = 0.f;
    shared = shared && l->adapter_ && l->adapter_->plain_low_rank(&a, &b, &s);
    if (!shared) break;
    as.push_back(a), bs.push_back(b), scales.push_back(s);
  }
  shared = shared && lora_decode_supported(x2, as, bs);
  for (size_t i = 0; i < ls.size(); ++i) {
    Linear& l = *ls[i];
    if (!shared) {
      l.finish_forward(y2[i], x2, train, dropout_seeds[i], bias_done[i]);
    } else if (l.bias_.defined() && !bias_done[i]) {
      add_bias(y2[i], l.bias_);  // plain LoRA sees the bias: it comes first
    }
  }
  if (shared) lora_decode_shared(y2, x2, as, bs, scales);
  return made;
}

void Linear::save_for_backward(Tensor x, bool train, uint64_t dropout_seed) {
  // The base weight's and the bias's backward read only x and dy (a base
  // that transforms x recomputes that from x in backward_input_from).
  if (!adapter_) return;
  const int64_t n = x.numel() / in_;
  if (adapter_->save_for_backward(x.view({n, in_}), *weight_, train, dropout_seed)) return;
  forward(Tensor::empty({n, out_}, x.dtype(), x.device()), x, train, dropout_seed);
}

void Linear::backward(Tensor dx, Tensor dy, Tensor x, bool accumulate) {
  int64_t n = x.numel() / in_;
  Tensor x2 = x.view({n, in_}), dy2 = dy.view({n, out_}), dx2 = dx.view({n, in_});
  const Tensor dyb = adapter_ ? adapter_->base_grad(dy2) : dy2;
  if (adapter_ && adapter_->scales_input()) {
    // the base saw xs = scale_input(x): a base that transforms its input (BitNet) needs it back
    Tensor xs = Tensor::empty({n, in_}, x2.dtype(), x2.device());
    adapter_->scale_input(xs, x2);
    Tensor dxs = Tensor::empty({n, in_}, dx2.dtype(), dx2.device());
    weight_->backward_input_from(dxs, dyb, xs, 0.f);
    adapter_->scale_input_backward(dx2, dxs, x2, accumulate);
  } else {
    weight_->backward_input_from(dx2, dyb, x2, accumulate ? 1.f : 0.f);
  }
  if (dw_.defined()) weight_->accumulate_weight_grad(dw_, dy2, x2);
  if (db_.defined()) bias_backward(db_, dy2);
  if (adapter_) adapter_->backward(dx2, dy2, x2, *weight_);
}

}  // namespace qtrain
