// LLaMA family (HF LlamaForCausalLM): pre-RMSNorm blocks, separate q/k/v/o
// projections with grouped-query attention, rotate-half RoPE, SwiGLU MLP,
// untied or tied lm_head.
#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "models/model.h"

namespace qtrain {

namespace {

struct LlamaActs {
  Tensor h1, rstd1, q, k, v, att, lse, x2, h2, rstd2, gate, up, s;
  int64_t bytes() const {
    return int64_t(bytes_of({&h1, &rstd1, &q, &k, &v, &att, &lse, &x2, &h2, &rstd2, &gate, &up, &s}));
  }
};

class LlamaModel : public Model {
 public:
  LlamaModel(const ModelConfig& cfg, const ModelOptions& opt) : Model(cfg, opt) {
    const int64_t C = cfg.d_model, V = cfg.vocab_size, Dh = cfg.head_dim;
    const int64_t q_out = cfg.n_head * Dh, kv_out = cfg.n_kv_head * Dh;
    embed_ = &slot("model.embed_tokens.weight", {V, C}, -1, true);
    for (int l = 0; l < cfg.n_layer; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      Block b;
      b.ln1 = &slot(p + "input_layernorm.weight", {C}, l);
      b.q = &linear(p + "self_attn.q_proj", C, q_out, cfg.attn_bias, l);
      b.k = &linear(p + "self_attn.k_proj", C, kv_out, cfg.attn_bias, l);
      b.v = &linear(p + "self_attn.v_proj", C, kv_out, cfg.attn_bias, l);
      b.o = &linear(p + "self_attn.o_proj", q_out, C, cfg.attn_bias, l);
      b.ln2 = &slot(p + "post_attention_layernorm.weight", {C}, l);
      b.gate = &linear(p + "mlp.gate_proj", C, cfg.d_ff, cfg.mlp_bias, l);
      b.up = &linear(p + "mlp.up_proj", C, cfg.d_ff, cfg.mlp_bias, l);
      b.down = &linear(p + "mlp.down_proj", cfg.d_ff, C, cfg.mlp_bias, l);
      blocks_.push_back(b);
    }
    norm_ = &slot("model.norm.weight", {C}, -1);
    head_ = cfg.tied_embeddings ? embed_ : &slot("lm_head.weight", {V, C}, -1, true);
    acts_.resize(size_t(cfg.n_layer));
  }

 protected:
  LayerColumns layer_columns() const override {
    const int64_t C = cfg_.d_model, F = cfg_.d_ff, q = int64_t(cfg_.n_head) * cfg_.head_dim,
                  kv = int64_t(cfg_.n_kv_head) * cfg_.head_dim;
    return {.kept = {C, q, kv, kv, q, C, C, F, F, F},        // LlamaActs: h1, q, k, v, att, x2, h2, gate, up, s
            .kept_f32 = {1, 1, int64_t(cfg_.n_head)},       // rstd1, rstd2, lse
            .pointwise = {C, C, F},                         // h1, h2, s
            .backward = {F, F, F, C, q, q, kv, kv, C}};  // ds, dgate, dup, dh2, datt, dq, dk, dv, dh1
  }
  int64_t layer_saved_bytes(int l) const override { return acts_[size_t(l)].bytes(); }
  WeightSlot& token_embedding() override { return *embed_; }
  WeightSlot& lm_head() override { return *head_; }

  void final_norm_forward(Tensor out, Tensor x) override {
    frstd_ = Tensor::empty({x.size(0)}, DType::F32, x.device());
    norm_with_pending(out, frstd_, x, norm_->value);
  }
  void final_norm_backward(Tensor dx, Tensor dout, Tensor x) override {
    rmsnorm_backward(dx, norm_->grad, dout, x, norm_->value, frstd_);
  }

  void layer_forward(int l, Tensor x, Tensor out, bool train, LayerKeep keep) override {
    const Block& b = blocks_[size_t(l)];
    LlamaActs local;
    LlamaActs& a = keep != LayerKeep::None ? acts_[size_t(l)] : local;
    const bool gemm_only = keep == LayerKeep::GemmOutputs;  // norms and SwiGLU are redone in backward
    const int64_t N = x.size(0), C = cfg_.d_model, Hq = cfg_.n_head, Hkv = cfg_.n_kv_head, Dh = cfg_.head_dim;
    const Device dev = x.device();
    auto act = [&](int64_t cols) { return Tensor::empty({N, cols}, act_dtype_, dev); };
    a.h1 = act(C);
    a.rstd1 = Tensor::empty({N}, DType::F32, dev);
    a.q = act(Hq * Dh), a.k = act(Hkv * Dh), a.v = act(Hkv * Dh);
    // h1 = rmsnorm(x + the previous layer's pending residual, when a decode step left one); the
    // residual stream from here on is `resid` (x itself, or the sum's own tensor where the 4-bit GEMV
    // made the norm: Linear::rmsnorm_input).
    // Decoding, RoPE and the cache append may go with the products (Linear::forward_rope_kv); where they
    // do not, attend does them.
    Shape qs{B_, T_, Hq, Dh}, ks{B_, T_, Hkv, Dh};
    const Linear::InputOp norm1 = Linear::rmsnorm_input(a.h1, a.rstd1, x, take_pending(), b.ln1->value, cfg_.norm_eps);
    const std::vector<uint64_t> seeds1 = {dropout_seed(l, 0), dropout_seed(l, 1), dropout_seed(l, 2)};
    bool appended = false;
    const auto [kc, vc] = decode_cache(l);
    const Tensor resid =
        kc.defined() && keep == LayerKeep::None
            ? Linear::forward_rope_kv({b.q, b.k, b.v}, {a.q.view(qs), a.k.view(ks), a.v.view(ks)}, norm1, train, seeds1,
                                      kc, vc, cfg_.rope_theta, pos_, &appended)
            : Linear::forward_shared({b.q, b.k, b.v}, {a.q, a.k, a.v}, norm1, train, seeds1);
    if (gemm_only) a.h1 = Tensor();
    a.att = act(Hq * Dh);
    a.lse = Tensor::empty({B_, Hq, T_}, DType::F32, dev);
    // RoPE on q and k (in place: backward reads them rotated) inside attend.
    attend(l, a.att.view(qs), a.lse, a.q.view(qs), a.k.view(ks), a.v.view(ks), cfg_.rope_theta, appended);
    a.x2 = act(C);
    Linear::forward_shared({b.o}, {a.x2}, a.att, train, {dropout_seed(l, 3)});
    a.h2 = act(C);
    a.rstd2 = Tensor::empty({N}, DType::F32, dev);
    a.gate = act(cfg_.d_ff), a.up = act(cfg_.d_ff);
    a.s = act(cfg_.d_ff);
    // x2 += resid, then its norm h2 (x2 then names the sum, wherever it went), then s = SwiGLU of
    // gate and up (which are not written where nothing reads them: Linear::forward_swiglu).
    a.x2 = Linear::forward_swiglu(*b.gate, *b.up, a.s, {a.gate, a.up},
                                  Linear::rmsnorm_input(a.h2, a.rstd2, a.x2, resid, b.ln2->value, cfg_.norm_eps), train,
                                  keep != LayerKeep::None, {dropout_seed(l, 4), dropout_seed(l, 5)});
    if (gemm_only) a.h2 = Tensor();
    if (mode_ == ForwardMode::Recompute) {
      b.down->save_for_backward(a.s, train, dropout_seed(l, 6));
      return;
    }
    Linear::forward_shared({b.down}, {out}, a.s, train, {dropout_seed(l, 6)});
    // A one-token decode step leaves out += x2 to the next norm (pending_residual_): one launch less.
    static const bool defer = [] {  // QT_DECODE_DEFER_ADD=0: the add as its own launch (for measuring)
      const char* e = std::getenv("QT_DECODE_DEFER_ADD");
      return !(e && std::string(e) == "0");
    }();
    if (defer && mode_ == ForwardMode::Decode && T_ == 1 && keep == LayerKeep::None)
      pending_residual_ = a.x2;
    else
      add_inplace(out, a.x2);
    if (gemm_only) a.s = Tensor();
    if (keep == LayerKeep::None) a = LlamaActs();
  }

  void layer_backward(int l, Tensor x, Tensor dx) override {
    const Block& b = blocks_[size_t(l)];
    LlamaActs& a = acts_[size_t(l)];
    const int64_t N = x.size(0), C = cfg_.d_model, Hq = cfg_.n_head, Hkv = cfg_.n_kv_head, Dh = cfg_.head_dim;
    const Device dev = x.device();
    auto act = [&](int64_t cols) { return Tensor::empty({N, cols}, act_dtype_, dev); };
    // out = x2 + down(swiglu(gate(h2), up(h2))), h2 = rmsnorm(x2)
    if (!a.s.defined()) {  // dropped by a GemmOutputs forward: SwiGLU again
      a.s = act(cfg_.d_ff);
      swiglu_forward(a.s, a.gate, a.up);
    }
    Tensor ds = act(cfg_.d_ff);
    b.down->backward(ds, dx, a.s);
    a.s = Tensor();
    Tensor dgate = act(cfg_.d_ff), dup = act(cfg_.d_ff);
    swiglu_backward(dgate, dup, ds, a.gate, a.up);
    if (!a.h2.defined()) {
      a.h2 = act(C);
      rmsnorm_forward(a.h2, a.rstd2, a.x2, b.ln2->value, cfg_.norm_eps);
    }
    Tensor dh2 = act(C);
    b.gate->backward(dh2, dgate, a.h2);
    b.up->backward(dh2, dup, a.h2, true);
    rmsnorm_backward(dx, b.ln2->grad, dh2, a.x2, b.ln2->value, a.rstd2, true);  // dx += it: dx = d(x2)
    // x2 = x + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = rmsnorm(x)
    Tensor datt = act(Hq * Dh);
    b.o->backward(datt, dx, a.att);
    Shape qs{B_, T_, Hq, Dh}, ks{B_, T_, Hkv, Dh};
    Tensor dq = act(Hq * Dh), dk = act(Hkv * Dh), dv = act(Hkv * Dh);
    attention_backward(dq.view(qs), dk.view(ks), dv.view(ks), datt.view(qs), a.q.view(qs), a.k.view(ks),
                       a.v.view(ks), a.att.view(qs), a.lse);
    rope_qk_backward(dq.view(qs), dk.view(ks), cfg_.rope_theta);
    // The projections read h1 before RoPE: a.q/a.k were rotated in place, but
    // Linear::backward only needs the layer input h1.
    if (!a.h1.defined()) {
      a.h1 = act(C);
      rmsnorm_forward(a.h1, a.rstd1, x, b.ln1->value, cfg_.norm_eps);
    }
    Tensor dh1 = act(C);
    b.q->backward(dh1, dq, a.h1);
    b.k->backward(dh1, dk, a.h1, true);
    b.v->backward(dh1, dv, a.h1, true);
    rmsnorm_backward(dx, b.ln1->grad, dh1, x, b.ln1->value, a.rstd1, true);
    a = LlamaActs();
  }

 private:
  // rmsnorm of x, after x += the previous layer's pending residual (decode steps) when there is one.
  void norm_with_pending(Tensor out, Tensor rstd, Tensor x, Tensor w) {
    if (!pending_residual_.defined()) return rmsnorm_forward(out, rstd, x, w, cfg_.norm_eps);
    add_rmsnorm_forward(out, rstd, x, take_pending(), w, cfg_.norm_eps);
  }
  Tensor take_pending() { return std::exchange(pending_residual_, Tensor()); }

  struct Block {
    WeightSlot *ln1, *ln2;
    Linear *q, *k, *v, *o, *gate, *up, *down;
  };
  WeightSlot *embed_, *norm_, *head_;
  std::vector<Block> blocks_;
  std::vector<LlamaActs> acts_;
  Tensor frstd_;
};

}  // namespace

std::unique_ptr<Model> make_llama(const ModelConfig& cfg, const ModelOptions& opt) {
  return std::make_unique<LlamaModel>(cfg, opt);
}

}  // namespace qtrain
