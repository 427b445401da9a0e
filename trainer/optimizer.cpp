#include "trainer/optimizer.h"

#include <map>

#include "kernels/adamw.h"

namespace qtrain {

AdamW::AdamW(const ParamSet& params, AdamWConfig config) : config_(config) {
  QT_CHECK(params.allocated(), "AdamW over an unallocated ParamSet");
  Device dev = params.values().device();
  m_ = Tensor::zeros(params.values().shape(), DType::F32, dev);
  v_ = Tensor::zeros(params.values().shape(), DType::F32, dev);
  // Runs cover the alignment padding between params too: its values, grads
  // and moments are all zero, so updating it leaves it zero.
  const auto& ps = params.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    int64_t end = i + 1 < ps.size() ? ps[i + 1].offset : params.values().numel();
    if (!runs_.empty() && runs_.back().decay == ps[i].decay)
      runs_.back().end = end;
    else
      runs_.push_back({ps[i].offset, end, ps[i].decay});
  }
}

void AdamW::step(ParamSet& params, float lr, float grad_scale) {
  ++steps_;
  AdamWParams hp;
  hp.lr = lr;
  hp.beta1 = config_.beta1;
  hp.beta2 = config_.beta2;
  hp.eps = config_.eps;
  hp.step = int(steps_);
  hp.grad_scale = grad_scale;
  Tensor p = params.values(), g = params.grads(), pc = params.compute_values();
  for (const Run& r : runs_) {
    hp.weight_decay = r.decay ? config_.weight_decay : 0.f;
    adamw_step(p.flat(r.begin, r.end), g.flat(r.begin, r.end), m_.flat(r.begin, r.end), v_.flat(r.begin, r.end),
               hp, pc.defined() ? pc.flat(r.begin, r.end) : Tensor());
  }
}

NamedTensors AdamW::state_tensors(const ParamSet& params) const {
  NamedTensors out;
  for (const Param& p : params.params()) {
    int64_t n = p.value.numel();
    out.emplace_back(p.name + ".exp_avg", m_.flat(p.offset, p.offset + n).view(p.shape));
    out.emplace_back(p.name + ".exp_avg_sq", v_.flat(p.offset, p.offset + n).view(p.shape));
  }
  return out;
}

void AdamW::load_state(const ParamSet& params, const NamedTensors& state, int64_t steps, const std::string& source) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : state) by_name[name] = &t;
  for (const Param& p : params.params()) {
    int64_t n = p.value.numel();
    for (auto [suffix, buf] : {std::pair{".exp_avg", m_}, std::pair{".exp_avg_sq", v_}}) {
      auto it = by_name.find(p.name + suffix);
      if (it == by_name.end()) throw Error(source + ": missing optimizer tensor '" + p.name + suffix + "'");
      if (it->second->shape() != p.shape)
        throw Error(source + ": optimizer tensor '" + p.name + suffix + "' has shape " +
                    shape_str(it->second->shape()) + ", the parameter has " + shape_str(p.shape));
      buf.flat(p.offset, p.offset + n).view(p.shape).copy_from(*it->second);
    }
  }
  if (steps < 0) throw Error(source + ": negative optimizer step count " + std::to_string(steps));
  steps_ = steps;
}

}  // namespace qtrain
