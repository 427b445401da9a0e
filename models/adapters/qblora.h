// Q-BLoRA (Shen et al. 2025, "Accurate and Efficient Fine-Tuning of Quantized
// LLMs Through Optimal Balance in Adaptation"): LoRA on an input average-pooled
// by lambda over the features, at rank lambda * r, its output repeat-interleaved
// by lambda:
//   y += s * repeat_interleave(pool(x) A^T B^T, lambda),
//   A [lambda r, in / lambda], B [out / lambda, lambda r],
// the same trainable parameter count as LoRA at rank r. s is LoRA's scale at
// the user's rank r (alpha / r, or alpha / sqrt(r) with rsLoRA), so lambda = 1
// is exactly LoRA. (The paper's Algorithm 1 declares A and B with nn.Linear's
// arguments swapped, applies the scale and the repeat to the base output as
// well, and its get_delta_weight repeats along dim 1 twice; the shapes here
// follow its section 3.2, checked against an independent PyTorch version in
// tests/models/qblora_test.cpp.) Dropout acts on the pooled input.
// The dense delta is constant on lambda x lambda blocks:
//   dW[o, i] = s (B A)[o / lambda, i / lambda] / lambda,
// so merging is exact. Saved as adapter_config.json {peft_type: "QBLORA", r,
// lora_alpha, blora_lambda, ...} with lora_A / lora_B tensors of the shapes above.
#pragma once
#include "models/adapters/lora.h"

namespace qtrain {

class QBloraAdapter : public LoraAdapter {
 public:
  // Throws a user error unless lambda divides in and out.
  QBloraAdapter(const std::string& module, int64_t in, int64_t out, LoraOptions opt);
  void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  bool save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) override;
  void release_saved() override {
    LoraAdapter::release_saved();
    xp_ = Tensor();
  }
  size_t saved_bytes() const override { return LoraAdapter::saved_bytes() + bytes_of({&xp_}); }
  SavedColumns saved_columns() const override {  // the pooled input, and LoRA's for it
    SavedColumns c = LoraAdapter::saved_columns();
    c.act.push_back(in_);
    return c;
  }
  void write_peft_config(nlohmann::json& cfg, const std::string& module) const override;
  Tensor delta_f32(const BaseWeight& base) const override;
  // Its factors feed products only too, but decode with the BF16 views has
  // not been tested against the F32 path for it: it keeps the F32 masters.
  std::vector<Param*> decode_factors() override { return {}; }
  int64_t lambda() const { return lambda_; }
  // No LoftQ: its B A act on the pooled input, so they cannot hold W - Q's rank-r part
  // (LoraAdapter's rank, lambda r, took LoftQ's [out, lambda r] pair into [out / lambda, lambda r]).
  int low_rank() const override { return 0; }

 private:
  // xp_ = pool(x), then LoRA's saved state for it.
  void save_pooled(Tensor x, bool train, uint64_t dropout_seed);
  int64_t lambda_;
  LoraOptions user_;  // the options as given (rank r); LoraAdapter holds rank lambda r
  Tensor xp_;         // [N, in / lambda]
};

}  // namespace qtrain
