// DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation"), as peft
// defines it: LoRA's A, B plus a magnitude m per output feature,
//   y = m / ||W + s B A||_row * (x W^T + s x A^T B^T) + b,
// the norm taken per output feature and detached from the graph (the paper's
// section 4.3, peft's rule); on a quantized base W is the dequantized weight.
// m starts at ||W||_row, so training starts at the base model.
//
// Cost: the rescale rides the Linear's one base product (no extra GEMM, the
// base sees m/||.|| * dy in backward), and the norm never forms W + s B A:
//   ||W_i + s (BA)_i||^2 = ||W_i||^2 + 2 s (B (A W^T)^T)_i + s^2 (B (A A^T) B^T)_ii
// with ||W_i||^2 computed once and A W^T one base product of r rows
// (kernels/column_scale.h). With dropout in training, peft's formula
//   y = x W^T + b + (m/n - 1) * drop(x) W^T + m/n * s drop(x) A^T B^T
// needs the base product of drop(x) as well, which then costs one more base GEMM each way.
#pragma once
#include "models/adapters/lora.h"

namespace qtrain {

class DoraAdapter : public LoraAdapter {
 public:
  DoraAdapter(int64_t in, int64_t out, LoraOptions opt) : LoraAdapter(in, out, opt) {}
  void declare(ParamSet& ps, const std::string& module, int layer) override;
  void bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) override;
  bool sees_bias() const override { return false; }
  void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  bool save_for_backward(Tensor, const BaseWeight&, bool, uint64_t) override { return false; }
  Tensor base_grad(Tensor dy) override;
  void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) override;
  void release_saved() override {
    LoraAdapter::release_saved();
    pre_ = dyg_ = Tensor();
    reuse_scale_ = !stale_;  // a gradient-checkpoint recompute follows, before any update
  }
  size_t saved_bytes() const override { return LoraAdapter::saved_bytes() + bytes_of({&pre_, &dyg_}); }
  SavedColumns saved_columns() const override {  // LoRA's, and the output before the rescale
    SavedColumns c = LoraAdapter::saved_columns();
    c.act.push_back(out_);
    return c;
  }
  void write_peft_config(nlohmann::json& cfg, const std::string& module) const override;
  void load(const std::function<Tensor(const std::string& suffix, const Shape& shape)>& get) override;
  std::vector<std::pair<std::string, Tensor>> tensors() const override;
  Tensor delta_f32(const BaseWeight& base) const override;
  Param& magnitude() { return *m_; }
  std::vector<Param*> decode_factors() override { return {}; }  // the row norm reads A and B in F32
  int low_rank() const override { return 0; }  // no LoftQ: m would have to start from ||Q + s B A||

 private:
  // scale_ = m / ||W + s B A|| (and norm_) from the current A, B, m.
  void refresh_scale(const BaseWeight& base, DType act);
  size_t im_ = 0;
  Param* m_ = nullptr;
  Tensor wn2_;           // ||W_i||^2 [out], F32, where the adapter lives
  Tensor norm_, scale_;  // [out] F32
  bool stale_ = true;    // A, B or m may have changed since refresh_scale
  bool reuse_scale_ = false;  // the next training forward is the recompute of this step's first
  bool dropped_ = false; // the last training forward used dropout (peft's two-product form)
  Tensor pre_;           // x W^T + s x A^T B^T (dropout: of drop(x)) before the rescale, for dm
  Tensor dyg_;           // scale_ * dy, what the base and the LoRA path see
};

}  // namespace qtrain
