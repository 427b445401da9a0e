// A model with its adapters folded into the base weights (W + s*B*A), rebuilt
// as a plain model: generation and evaluation "merged", the way the weights
// run once exported with --merge. A quantized base merges as dequant(W) + delta
// and is quantized again by the rebuilt model's method.
#pragma once
#include <map>
#include <memory>

#include "kernels/error.h"
#include "models/model.h"

namespace qtrain {

// Tensors held in memory under HF names, as a WeightSource. Names lose GPT-2's
// "transformer." prefix, as every WeightSource presents them (weight_source.h).
class StateDictSource : public WeightSource {
 public:
  explicit StateDictSource(std::vector<std::pair<std::string, Tensor>> tensors) {
    const std::string prefix = "transformer.";
    for (auto& [name, t] : tensors)
      tensors_[name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name] = std::move(t);
  }
  const std::string& path() const override { return label_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& [k, v] : tensors_) n.push_back(k);
    return n;
  }
  bool has(const std::string& name) const override { return tensors_.count(name) > 0; }
  Shape shape(const std::string& name) const override { return at(name).shape(); }
  Tensor load_f32(const std::string& name) const override { return at(name); }

 private:
  const Tensor& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(label_ + ": no tensor '" + name + "'", ErrorKind::Runtime);
    return it->second;
  }
  std::string label_ = "merged weights";
  std::map<std::string, Tensor> tensors_;
};


// `opt` says how to hold the rebuilt base (device, method); its targets are
// ignored: the result has no adapter.
std::unique_ptr<Model> merge_adapters_into_base(const Model& with_adapters, ModelOptions opt);

}  // namespace qtrain
