// LoRA (Hu et al. 2021), as PEFT defines it:
//   y = x W^T + s * (dropout(x) A^T) B^T,   A [r, in], B [out, r],
//   s = alpha / r (or alpha / sqrt(r) with rsLoRA).
// A starts kaiming-uniform (bound 1/sqrt(in)), B starts at zero, so training
// begins exactly at the base model.
#pragma once
#include "models/adapters/adapter.h"
#include "models/adapters/lora_patterns.h"

namespace qtrain {

struct LoraOptions {
  int r = 8;
  float alpha = 16.f;
  float dropout = 0.f;
  bool rslora = false;
  LoraPatterns patterns;  // per-module r / alpha (peft's rank_pattern / alpha_pattern)
  int blora_lambda = 2;  // Q-BLoRA's balance factor (models/adapters/qblora.h); LoRA ignores it
  int qablora_tile_out = 8, qablora_tile_in = 4;  // QA-BLoRA's tile (models/adapters/qablora.h)
  float scale() const;
};

class LoraAdapter : public Adapter {
 public:
  // Bad ranks, alphas or dropouts are user errors (they come from flags or adapter_config.json).
  LoraAdapter(int64_t in, int64_t out, LoraOptions opt);
  void declare(ParamSet& ps, const std::string& module, int layer) override;
  void bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) override;
  void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  bool save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  void write_peft_config(nlohmann::json& cfg, const std::string& module) const override;
  void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) override;
  void release_saved() override { h_ = xd_ = mask_ = Tensor(); }
  size_t saved_bytes() const override { return bytes_of({&h_, &xd_, &mask_}); }
  SavedColumns saved_columns() const override;
  std::vector<std::pair<std::string, Tensor>> tensors() const override;
  Tensor delta_f32(const BaseWeight& base) const override;
  std::vector<Param*> decode_factors() override { return {a_, b_}; }  // A and B feed products only
  bool plain_low_rank(Tensor* a, Tensor* b, float* scale) const override;
  int low_rank() const override { return opt_.r; }
  void init_low_rank(const Tensor& b, const Tensor& a) override;  // lora_B = b, lora_A = a, as peft's LoftQ

  Param& A() { return *a_; }
  Param& B() { return *b_; }
  const LoraOptions& options() const { return opt_; }

 protected:
  // dropout(x) into xd_/mask_ and h_ = dropout(x) A^T: all that backward reads.
  Tensor save_input(Tensor x2, bool train, uint64_t dropout_seed);
  // The LoRA path's backward for an output gradient dy (already scaled by
  // whatever follows the adapter): dB, dA, and dx += dropout'(s dy B A).
  void lora_backward(Tensor dx, Tensor dy, Tensor x);
  int64_t in_, out_;
  LoraOptions opt_;
  size_t ia_ = 0, ib_ = 0;
  Param* a_ = nullptr;
  Param* b_ = nullptr;
  // Saved between forward and backward.
  Tensor h_;      // [N, r] = dropout(x) A^T
  Tensor xd_;     // dropout(x) when dropout > 0
  Tensor mask_;
};

}  // namespace qtrain
