#include "models/ternary_export.h"

#include <set>

#include "models/merged_model.h"
#include "models/ternary_weight.h"

namespace qtrain {

std::vector<std::pair<std::string, Tensor>> ternary_state(const Model& m) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::set<std::string> linear_weights;
  for (const Linear* lin : m.linears()) {
    if (lin->adapter())
      throw Error("--format ternary: '" + lin->name() + "' has an adapter; the ternary export holds the base only");
    const auto* t = dynamic_cast<const TernaryWeight*>(&lin->base());
    if (!t) throw Error("--format ternary: '" + lin->name() + "' is not a ternary base (use --method bitnet or bitnet-lora)");
    const std::string w = lin->name() + ".weight";
    linear_weights.insert(w);
    const TernaryTensor& p = t->packed();
    out.push_back({w, p.codes.clone()});
    out.push_back({w + ".ternary_scale", Tensor::from_elements(std::vector<float>{p.scale}, {1}, DType::F32)});
    out.push_back({w + ".ternary_subln", Tensor::from_elements(std::vector<float>{t->subln() ? 1.f : 0.f}, {1}, DType::F32)});
  }
  for (auto& [name, t] : m.hf_state_dict(false))  // embeddings, norms, lm_head, biases
    if (!linear_weights.count(name)) out.push_back({name, t.to(Device::CPU, DType::F32)});
  return out;
}

void save_ternary_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                        const std::string& base, const ModelConfig& cfg) {
  save_packed_model(dir, state, base, cfg,
                    "ternary (BitNet b1.58): <m>.weight U8 codes [out, ceil(in/16)*4] (code = T + 1, "
                    "weight 4g+i of each 16 in byte i at bits 2g), <m>.weight.ternary_scale F32 [1], "
                    "<m>.weight.ternary_subln F32 [1]; load with --method bitnet-lora");
}

}  // namespace qtrain
