// IA3 (Liu et al. 2022, "(IA)^3"), as peft defines it: a learned vector l,
// initialised to ones, that scales
//   - the output of an attention module (k, v; GPT-2's c_attn): y = (x W^T + b) * l,  l: ia3_l [out, 1]
//   - the input of a feed-forward module (down_proj; GPT-2's mlp.c_proj): y = (x * l) W^T + b,  l: ia3_l [1, in]
// Both ride the Linear's one base product (Adapter's scale hooks), so IA3
// costs no extra GEMM. Which modules are feed-forward follows peft's rule: the
// module path ends with one of feedforward_modules (a plain suffix test).
#pragma once
#include "models/adapters/adapter.h"
#include "models/model_config.h"

namespace qtrain {

class Ia3Adapter : public Adapter {
 public:
  Ia3Adapter(int64_t in, int64_t out, bool feedforward) : in_(in), out_(out), ff_(feedforward) {}
  bool feedforward() const { return ff_; }

  void declare(ParamSet& ps, const std::string& module, int layer) override;
  void bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) override;
  void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  bool save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override { return ff_; }
  void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) override;
  void release_saved() override { y0_ = Tensor(); }
  size_t saved_bytes() const override { return bytes_of({&y0_}); }
  SavedColumns saved_columns() const override { return ff_ ? SavedColumns{} : SavedColumns{{out_}, 0}; }
  bool scales_input() const override { return ff_; }
  void scale_input(Tensor xs, Tensor x) override;
  void scale_input_backward(Tensor dx, Tensor dxs, Tensor x, bool accumulate) override;
  Tensor base_grad(Tensor dy) override;
  void write_peft_config(nlohmann::json& cfg, const std::string& module) const override;
  std::vector<std::pair<std::string, Tensor>> tensors() const override { return {{"ia3_l", l_->value}}; }
  Tensor delta_f32(const BaseWeight& base) const override;
  void merge_bias(Tensor bias) const override;

 private:
  Tensor vec() const { return l_->value.view({l_->value.numel()}); }
  int64_t in_, out_;
  bool ff_;
  size_t il_ = 0;
  Param* l_ = nullptr;
  Tensor y0_;  // output-scaled: x W^T + b before the scale, for dl
};

// peft's defaults for an architecture (TRANSFORMERS_MODELS_TO_IA3_*_MAPPING).
std::vector<std::string> ia3_default_targets(Arch arch);
std::vector<std::string> ia3_default_feedforward(Arch arch);
// peft's test: `module` ends with one of `feedforward` (no dot boundary).
bool ia3_is_feedforward(const std::string& module, const std::vector<std::string>& feedforward);

}  // namespace qtrain
