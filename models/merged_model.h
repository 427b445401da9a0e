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
  Tensor load_f32(const std::string& name) const override {
    const Tensor& t = at(name);
    return t.dtype() == DType::F32 && t.device() == Device::CPU ? t : t.to(Device::CPU, DType::F32);
  }

 private:
  const Tensor& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(label_ + ": no tensor '" + name + "'", ErrorKind::Runtime);
    return it->second;
  }
  std::string label_ = "merged weights";
  std::map<std::string, Tensor> tensors_;
};


// Gives a model directory written from `base` what describes it besides its
// weights: from an HF directory, its config.json (when `config`), tokenizer
// and generation files; from anything else (a GGUF file), a config.json made
// from `cfg` (when `config`) - the tokenizer then stays in the GGUF file
// (--tokenizer FILE.gguf).
void copy_model_files(const std::string& base, const ModelConfig& cfg, const std::string& to, bool config);

// A model directory whose Linear weights are stored packed (ternary, asym4):
// dir/model.safetensors of `state`, its header metadata saying how to read the
// codes (quant_note, as "qtrain_quant"), and `base`'s files (copy_model_files,
// config included).
void save_packed_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                       const std::string& base, const ModelConfig& cfg, const std::string& quant_note);

// `opt` says how to hold the rebuilt base (device, method); its targets are
// ignored: the result has no adapter.
std::unique_ptr<Model> merge_adapters_into_base(const Model& with_adapters, ModelOptions opt);

}  // namespace qtrain
