// QA-BLoRA (Shen et al. 2025, section 3.3): one trainable matrix H whose
// entries each cover one tile of tile_out output rows x tile_in input columns:
//   y += s * repeat_interleave(avg_pool(x, tile_in) H^T, tile_out),
//   H [out / tile_out, in / tile_in], s = alpha / r (LoRA's scale; H starts at 0).
// (The paper writes H as (D_in/l1, D_out/l2) for W (D_in, D_out); its Algorithm 2
// gives nn.Linear the transposed shape and scales the base output too.) The dense
// change is constant on each tile, dW[o, i] = s H[o / tile_out, i / tile_in] / tile_in,
// so on the qablora method's base (models/asym4_weight.h: asymmetric 4-bit with
// one scale and zero per tile of the same shape) merging adds s H / tile_in to
// the zeros and leaves every code and scale: the merged model is pure 4-bit and
// computes what the adapter did (models/asym4_export.h). The default tile 8 x 4
// (32 weights) is the paper's best for block size 32 (lambda1 = 4 in, lambda2 = 8 out).
#pragma once
#include "models/adapters/adapter.h"
#include "models/adapters/lora.h"

namespace qtrain {

class QABloraAdapter : public Adapter {
 public:
  // Throws a user error unless the tile divides in and out, or with dropout.
  QABloraAdapter(const std::string& module, int64_t in, int64_t out, LoraOptions opt);
  void declare(ParamSet& ps, const std::string& module, int layer) override;
  void bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) override;
  void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  bool save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) override;
  void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) override;
  void release_saved() override { xp_ = Tensor(); }
  size_t saved_bytes() const override { return bytes_of({&xp_}); }
  SavedColumns saved_columns() const override { return {{in_ / ti_}, 0}; }
  void write_peft_config(nlohmann::json& cfg, const std::string& module) const override;
  std::vector<std::pair<std::string, Tensor>> tensors() const override;
  Tensor delta_f32(const BaseWeight& base) const override;
  // s H / tile_in, F32 host [out / tile_out, in / tile_in]: what merging adds to each tile.
  Tensor tile_shift() const;
  int64_t tile_out() const { return to_; }
  int64_t tile_in() const { return ti_; }
  Param& H() { return *h_; }

 private:
  void save_pooled(Tensor x);
  int64_t in_, out_, to_, ti_;
  LoraOptions opt_;
  size_t ih_ = 0;
  Param* h_ = nullptr;
  Tensor xp_;  // [N, in / tile_in], saved for backward
};

}  // namespace qtrain
