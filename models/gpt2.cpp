// GPT-2 (HF GPT2LMHeadModel): pre-LayerNorm blocks, fused q|k|v projection
// (c_attn), tanh-GELU MLP, learned positions, lm_head tied to wte.
// HF stores its Conv1D weights as [in, out]; they are transposed on load.
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "models/model.h"

namespace qtrain {

namespace {

struct Gpt2Acts {
  Tensor ln1, mean1, rstd1, qkv, att, lse, x2, ln2, mean2, rstd2, fc, g;
  int64_t bytes() const {
    return int64_t(bytes_of({&ln1, &mean1, &rstd1, &qkv, &att, &lse, &x2, &ln2, &mean2, &rstd2, &fc, &g}));
  }
};

class Gpt2Model : public Model {
 public:
  Gpt2Model(const ModelConfig& cfg, const ModelOptions& opt) : Model(cfg, opt) {
    const int64_t C = cfg.d_model, V = cfg.vocab_size;
    wte_ = &slot("transformer.wte.weight", {V, C}, -1, true);
    wpe_ = &slot("transformer.wpe.weight", {cfg.max_pos, C}, -1, true);
    for (int l = 0; l < cfg.n_layer; ++l) {
      std::string p = "transformer.h." + std::to_string(l) + ".";
      Block b;
      b.ln1_w = &slot(p + "ln_1.weight", {C}, l);
      b.ln1_b = &slot(p + "ln_1.bias", {C}, l);
      b.c_attn = &linear(p + "attn.c_attn", C, 3 * C, true, l);
      b.c_proj = &linear(p + "attn.c_proj", C, C, true, l);
      b.ln2_w = &slot(p + "ln_2.weight", {C}, l);
      b.ln2_b = &slot(p + "ln_2.bias", {C}, l);
      b.c_fc = &linear(p + "mlp.c_fc", C, cfg.d_ff, true, l);
      b.mlp_proj = &linear(p + "mlp.c_proj", cfg.d_ff, C, true, l);
      blocks_.push_back(b);
    }
    lnf_w_ = &slot("transformer.ln_f.weight", {C}, -1);
    lnf_b_ = &slot("transformer.ln_f.bias", {C}, -1);
    acts_.resize(size_t(cfg.n_layer));
  }

 protected:
  bool transposed_weights() const override { return true; }
  // Checkpoints name tensors without the "transformer." prefix (see weight_source.h).
  std::string source_name(const std::string& n) const override {
    const std::string p = "transformer.";
    return n.rfind(p, 0) == 0 ? n.substr(p.size()) : n;
  }
  WeightSlot& token_embedding() override { return *wte_; }
  WeightSlot* position_embedding() override { return wpe_; }
  int position_limit() const override { return cfg_.max_pos; }
  WeightSlot& lm_head() override { return *wte_; }

  void final_norm_forward(Tensor out, Tensor x) override {
    int64_t N = x.size(0);
    fmean_ = Tensor::empty({N}, DType::F32, x.device());
    frstd_ = Tensor::empty({N}, DType::F32, x.device());
    layernorm_forward(out, fmean_, frstd_, x, lnf_w_->value, lnf_b_->value, cfg_.norm_eps);
  }
  void final_norm_backward(Tensor dx, Tensor dout, Tensor x) override {
    layernorm_backward(dx, lnf_w_->grad, lnf_b_->grad, dout, x, lnf_w_->value, fmean_, frstd_);
  }

  LayerColumns layer_columns() const override {
    const int64_t C = cfg_.d_model, F = cfg_.d_ff;
    return {.kept = {C, 3 * C, C, C, C, F, F},  // Gpt2Acts: ln1, qkv, att, x2, ln2, fc, g
            .kept_f32 = {1, 1, 1, 1, int64_t(cfg_.n_head)},  // mean1, rstd1, mean2, rstd2, lse
            .pointwise = {C, C, F},                           // ln1, ln2, g
            // dg, dfc, dln2, datt, dqkv, dln1
            .backward = {F, F, C, C, 3 * C, C}};
  }
  int64_t layer_saved_bytes(int l) const override { return acts_[size_t(l)].bytes(); }

  void layer_forward(int l, Tensor x, Tensor out, bool train, LayerKeep keep) override {
    const Block& b = blocks_[size_t(l)];
    Gpt2Acts local;
    Gpt2Acts& a = keep != LayerKeep::None ? acts_[size_t(l)] : local;
    const bool gemm_only = keep == LayerKeep::GemmOutputs;  // norms and GELU are redone in backward
    const int64_t N = x.size(0), C = cfg_.d_model, H = cfg_.n_head, D = C / H;
    const Device dev = x.device();
    auto act = [&](int64_t cols) { return Tensor::empty({N, cols}, act_dtype_, dev); };
    auto stat = [&] { return Tensor::empty({N}, DType::F32, dev); };
    a.ln1 = act(C), a.mean1 = stat(), a.rstd1 = stat();
    layernorm_forward(a.ln1, a.mean1, a.rstd1, x, b.ln1_w->value, b.ln1_b->value, cfg_.norm_eps);
    a.qkv = act(3 * C);
    b.c_attn->forward(a.qkv, a.ln1, train, dropout_seed(l, 0));
    if (gemm_only) a.ln1 = Tensor();
    Shape bthd{B_, T_, H, D};
    a.att = act(C);
    a.lse = Tensor::empty({B_, H, T_}, DType::F32, dev);
    if (mode_ == ForwardMode::Decode) {  // the KV cache takes k and v as their own tensors
      Tensor q = act(C), k = act(C), v = act(C);
      copy_cols(q, a.qkv, 0);
      copy_cols(k, a.qkv, C);
      copy_cols(v, a.qkv, 2 * C);
      attend(l, a.att.view(bthd), a.lse, q.view(bthd), k.view(bthd), v.view(bthd));
    } else {  // attention reads q, k, v where the fused projection put them (kept for backward)
      attention_forward_qkv(a.att.view(bthd), a.lse, a.qkv.view({B_, T_, 3 * C}));
    }
    a.x2 = act(C);
    b.c_proj->forward(a.x2, a.att, train, dropout_seed(l, 1));
    a.ln2 = act(C), a.mean2 = stat(), a.rstd2 = stat();
    // x2 += x, then its norm
    add_layernorm_forward(a.ln2, a.mean2, a.rstd2, a.x2, x, b.ln2_w->value, b.ln2_b->value, cfg_.norm_eps);
    a.fc = act(cfg_.d_ff);
    b.c_fc->forward(a.fc, a.ln2, train, dropout_seed(l, 2));
    if (gemm_only) a.ln2 = Tensor();
    a.g = act(cfg_.d_ff);
    gelu_forward(a.g, a.fc);
    if (mode_ == ForwardMode::Recompute) {
      b.mlp_proj->save_for_backward(a.g, train, dropout_seed(l, 3));
      return;
    }
    b.mlp_proj->forward(out, a.g, train, dropout_seed(l, 3));
    add_inplace(out, a.x2);
    if (gemm_only) a.g = Tensor();
    if (keep == LayerKeep::None) a = Gpt2Acts();
  }

  void layer_backward(int l, Tensor x, Tensor dx) override {
    const Block& b = blocks_[size_t(l)];
    Gpt2Acts& a = acts_[size_t(l)];
    const int64_t N = x.size(0), C = cfg_.d_model, H = cfg_.n_head, D = C / H;
    const Device dev = x.device();
    auto act = [&](int64_t cols) { return Tensor::empty({N, cols}, act_dtype_, dev); };
    // out = x2 + mlp(ln2(x2)); dx holds d(out).
    if (!a.g.defined()) {  // dropped by a GemmOutputs forward: GELU again
      a.g = act(cfg_.d_ff);
      gelu_forward(a.g, a.fc);
    }
    Tensor dg = act(cfg_.d_ff);
    b.mlp_proj->backward(dg, dx, a.g);
    a.g = Tensor();
    Tensor dfc = act(cfg_.d_ff);
    gelu_backward(dfc, dg, a.fc);
    if (!a.ln2.defined()) {
      a.ln2 = act(C);
      layernorm_forward(a.ln2, a.mean2, a.rstd2, a.x2, b.ln2_w->value, b.ln2_b->value, cfg_.norm_eps);
    }
    Tensor dln2 = act(C);
    b.c_fc->backward(dln2, dfc, a.ln2);
    // dx += the norm's gradient: dx is now d(x2)
    layernorm_backward(dx, b.ln2_w->grad, b.ln2_b->grad, dln2, a.x2, b.ln2_w->value, a.mean2, a.rstd2, true);
    // x2 = x + c_proj(attn(ln1(x)))
    Tensor datt = act(C);
    b.c_proj->backward(datt, dx, a.att);
    Shape bthd{B_, T_, H, D};
    Tensor dqkv = act(3 * C);
    attention_backward_qkv(dqkv.view({B_, T_, 3 * C}), datt.view(bthd), a.qkv.view({B_, T_, 3 * C}),
                           a.att.view(bthd), a.lse);
    if (!a.ln1.defined()) {
      a.ln1 = act(C);
      layernorm_forward(a.ln1, a.mean1, a.rstd1, x, b.ln1_w->value, b.ln1_b->value, cfg_.norm_eps);
    }
    Tensor dln1 = act(C);
    b.c_attn->backward(dln1, dqkv, a.ln1);
    layernorm_backward(dx, b.ln1_w->grad, b.ln1_b->grad, dln1, x, b.ln1_w->value, a.mean1, a.rstd1, true);
    a = Gpt2Acts();
  }

 private:
  struct Block {
    WeightSlot *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    Linear *c_attn, *c_proj, *c_fc, *mlp_proj;
  };
  WeightSlot *wte_, *wpe_, *lnf_w_, *lnf_b_;
  std::vector<Block> blocks_;
  std::vector<Gpt2Acts> acts_;
  Tensor fmean_, frstd_;
};

}  // namespace

std::unique_ptr<Model> make_gpt2(const ModelConfig& cfg, const ModelOptions& opt) {
  return std::make_unique<Gpt2Model>(cfg, opt);
}

}  // namespace qtrain
