// An adapter attached to one Linear layer (LoRA, DoRA, IA3 ...; each in its
// own file under models/adapters/, registered as an adapter type). The Linear runs the base
// weight first; the adapter then adds its part to y, and in backward adds its
// part to dx and accumulates its own parameter gradients.
//
// Adapters that reshape the base path rather than add to it hook into the
// Linear's one base product, so they cost no extra base GEMM:
//   forward   y = base(in_scale(x)) [+ bias] -> forward(y, ...) [+ bias]
//   backward  dyb = base_grad(dy); dxs = dyb W; dx = in_scale'(dxs); backward(dx, dy, ...)
// An input scale (IA3 on a feed-forward projection) is scales_input() +
// scale_input / scale_input_backward; an output scale (IA3 on k/v, DoRA's
// m/||W'||) rescales y in forward and returns the rescaled gradient from
// base_grad. sees_bias() says whether forward's y holds the bias already.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.h"
#include "models/base_weight.h"
#include "models/params.h"

namespace qtrain {

class Adapter {
 public:
  virtual ~Adapter() = default;
  // Register trainable tensors under `module` (the HF module path).
  virtual void declare(ParamSet& ps, const std::string& module, int layer) = 0;
  // After ParamSet::allocate and the base is built: bind views and initialise
  // (deterministic in seed; DoRA's magnitude starts at the base's row norms).
  virtual void bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) = 0;
  // y[N,out] already holds base(x) (plus the bias when sees_bias()); add the
  // adapter's contribution or rescale it. x is the Linear's own input.
  virtual void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) = 0;
  // What forward saves for backward, without producing y: a layer's last
  // projection feeds only the residual, so a gradient-checkpoint recompute
  // needs its saved state but not its output. Returns false when the adapter
  // has no cheaper way (the default): the Linear then runs its whole forward,
  // base product included, into a scratch output.
  virtual bool save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) {
    return false;
  }
  // Drops what forward saved for backward. A gradient-checkpointed first pass
  // keeps nothing (the recompute before the layer's backward saves it again):
  // DoRA's unscaled output alone is N x out per Linear, 26 GB over LLaMA-7B at 4 x 2048.
  virtual void release_saved() {}
  // Bytes held for backward now (tests; the memory estimate's activations).
  virtual size_t saved_bytes() const { return 0; }
  // What forward saves, per token, read from the declaration alone (the memory
  // estimate, trainer/memory_plan.h): tensors in the activation dtype, each as
  // its columns, and bytes (a dropout mask). saved_bytes() after a forward of
  // N tokens is N times this (tests/models/activation_plan_test.cpp).
  struct SavedColumns {
    std::vector<int64_t> act;
    int64_t bytes = 0;
  };
  virtual SavedColumns saved_columns() const { return {}; }
  // dx[N,in] already holds the base path's input gradient; add the adapter's
  // part; accumulate grads. dy is the gradient of the Linear's output.
  virtual void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) = 0;

  // ---- hooks into the base path (identity by default) ----
  virtual bool sees_bias() const { return true; }
  virtual bool scales_input() const { return false; }
  // xs[N,in] = the base product's input, from x (only with scales_input()).
  virtual void scale_input(Tensor xs, Tensor x) {}
  // dx (overwritten, or added to with accumulate) from dxs = the gradient of the
  // scaled input; accumulates the scale's own gradient.
  virtual void scale_input_backward(Tensor dx, Tensor dxs, Tensor x, bool accumulate) {}
  // The gradient the base product sees, from dy; dy itself when unchanged.
  virtual Tensor base_grad(Tensor dy) { return dy; }

  // ---- decoding (models/model_decode.cpp) ----
  // The trainable factors a one-token GPU decode step may read as BF16 views
  // of one BF16 copy instead of their F32 masters: each is used only as an
  // operand of a product, which converts it to BF16 anyway, so the numbers do
  // not change and a step saves a conversion kernel per factor. None by
  // default: an adapter that reads a parameter outside products (DoRA's norm,
  // IA3's scales, the pooled adapters) keeps the F32 master.
  virtual std::vector<Param*> decode_factors() { return {}; }
  // The factors when forward is exactly y += scale (x A^T) B^T outside training
  // (plain LoRA / rsLoRA, not the methods built on it), so that adapters reading
  // one x can run as one lora_decode_shared (Linear::forward_shared); false by default.
  virtual bool plain_low_rank(Tensor* a, Tensor* b, float* scale) const { return false; }

  // ---- LoftQ (models/loftq.h) ----
  // The rank r of a pair B [out, r], A [r, in] this adapter can start from; 0 = it cannot.
  virtual int low_rank() const { return 0; }
  // After bind_and_init: start from B and A (F32 host) instead of the default init.
  virtual void init_low_rank(const Tensor& b, const Tensor& a) {}

  // ---- PEFT interchange ----
  // Fields of adapter_config.json that this adapter sets (peft_type, r, ...).
  // Called for every adapted module in order (`module`: its HF path), so a
  // per-module field (IA3's feedforward_modules, rank_pattern) can be filled in.
  virtual void write_peft_config(nlohmann::json& cfg, const std::string& module) const = 0;
  // Fills tensors() from a stored adapter: get(suffix, shape) returns the
  // stored F32 tensor or throws naming the file, tensor and shapes.
  virtual void load(const std::function<Tensor(const std::string& suffix, const Shape& shape)>& get) {
    for (auto& [suffix, t] : tensors()) t.copy_from(get(suffix, t.shape()));
  }
  // Tensors under their PEFT names relative to the module ("lora_A.weight", ...).
  virtual std::vector<std::pair<std::string, Tensor>> tensors() const = 0;
  // W_eff - W as a dense F32 host matrix [out, in] (merge on export); `base`
  // for adapters whose change depends on W (IA3, DoRA).
  virtual Tensor delta_f32(const BaseWeight& base) const = 0;
  // The merged bias (F32 host [out]), changed in place: IA3 scales the bias of
  // an output-scaled module as peft's merge does; additive adapters leave it.
  virtual void merge_bias(Tensor bias) const {}
};

}  // namespace qtrain
