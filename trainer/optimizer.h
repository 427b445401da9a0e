// AdamW over a ParamSet (torch.optim.AdamW semantics), fp32 state kept on the
// parameters' device. Parameters are grouped into maximal contiguous runs of
// the same weight-decay flag, so a LoRA run is one fused kernel launch.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.h"
#include "models/params.h"

namespace qtrain {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;  // applied to params with decay == true only
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class AdamW {
 public:
  // `params` must be allocated; m and v start at zero on its device.
  AdamW(const ParamSet& params, AdamWConfig config);

  // One update of every parameter from its gradient times `grad_scale`
  // (clipping and 1/token-count averaging fold in there). Increments steps().
  void step(ParamSet& params, float lr, float grad_scale = 1.f);

  int64_t steps() const { return steps_; }
  const AdamWConfig& config() const { return config_; }
  Tensor exp_avg() const { return m_; }
  Tensor exp_avg_sq() const { return v_; }

  // Checkpoint state keyed by parameter name ("<name>.exp_avg",
  // "<name>.exp_avg_sq"), so it survives a change of layout or world size.
  NamedTensors state_tensors(const ParamSet& params) const;
  // Restores m/v from tensors as state_tensors() wrote them; a missing name or
  // a wrong shape is a BadInput error naming `source` (the file).
  void load_state(const ParamSet& params, const NamedTensors& state, int64_t steps, const std::string& source);

 private:
  struct Run {  // a contiguous range of the flat buffers sharing one decay flag
    int64_t begin, end;
    bool decay;
  };
  AdamWConfig config_;
  std::vector<Run> runs_;
  Tensor m_, v_;
  int64_t steps_ = 0;
};

}  // namespace qtrain
