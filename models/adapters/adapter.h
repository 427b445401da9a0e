// An adapter attached to one Linear layer (LoRA now; DoRA, IA3, Q-BLoRA ...
// each in its own file under models/adapters/). The Linear runs the base
// weight first; the adapter then adds its part to y, and in backward adds its
// part to dx and accumulates its own parameter gradients.
#pragma once
#include <cstdint>
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
  // After ParamSet::allocate: bind views and initialise (deterministic in seed).
  virtual void bind_and_init(ParamSet& ps, uint64_t seed) = 0;
  // y[N,out] already holds base(x); add the adapter's contribution.
  virtual void forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) = 0;
  // What forward saves for backward, without producing y: a layer's last
  // projection feeds only the residual, so a gradient-checkpoint recompute
  // needs its saved state but not its output. The default runs forward into
  // a scratch output; adapters override it with something cheaper.
  virtual void save_for_backward(Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) {
    const int64_t n = x.numel() / base.in_features();
    Tensor y = Tensor::empty({n, base.out_features()}, x.dtype(), x.device());
    y.zero_();
    forward(y, x, base, train, dropout_seed);
  }
  // dx[N,in] already holds dy @ W; add the adapter's part; accumulate grads.
  virtual void backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) = 0;
  // Tensors under their PEFT names relative to the module ("lora_A.weight", ...).
  virtual std::vector<std::pair<std::string, Tensor>> tensors() const = 0;
  // W_eff - W as a dense F32 host matrix [out, in] (merge on export).
  virtual Tensor delta_f32() const = 0;
};

}  // namespace qtrain
