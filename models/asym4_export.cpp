#include "models/asym4_export.h"

#include <set>

#include "models/adapters/qablora.h"
#include "models/asym4_weight.h"
#include "models/merged_model.h"

namespace qtrain {

bool has_asym4_base(const Model& m) {
  for (Linear* lin : m.linears())
    if (dynamic_cast<const Asym4Weight*>(&lin->base())) return true;
  return false;
}

std::vector<std::pair<std::string, Tensor>> merged_asym4_state(const Model& m) {
  std::set<std::string> linear_weights;
  std::vector<std::pair<std::string, Tensor>> out;
  for (Linear* lin : m.linears()) {
    const auto* q = dynamic_cast<const Asym4Weight*>(&lin->base());
    if (!q)
      throw Error("merge to 4 bits: '" + lin->name() + "' has no asymmetric 4-bit base (train with --method qablora)");
    std::unique_ptr<Asym4Weight> merged;
    if (lin->adapter()) {
      const auto* a = dynamic_cast<const QABloraAdapter*>(lin->adapter());
      if (!a || a->tile_out() != q->tiles().tile_out || a->tile_in() != q->tiles().tile_in)
        throw Error("merge to 4 bits: the adapter on '" + lin->name() +
                    "' is not QA-BLoRA on the base's tiles, so it cannot fold into the 4-bit zeros");
      merged = q->with_zero_shift(a->tile_shift());
      q = merged.get();
    }
    const std::string w = lin->name() + ".weight";
    linear_weights.insert(w);
    out.push_back({w, q->codes().clone()});
    out.push_back({w + ".asym4_scale", q->scale().clone()});
    out.push_back({w + ".asym4_zero", q->zero().clone()});
  }
  for (auto& [name, t] : m.hf_state_dict(false))  // slots and biases (dense Linear weights are replaced above)
    if (!linear_weights.count(name)) out.push_back({name, t});
  return out;
}

void save_asym4_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                      const std::string& base_dir, const ModelConfig& cfg) {
  save_packed_model(dir, state, base_dir, cfg,
                    "asym4 tiles: <m>.weight U8 codes [out, in/2], "
                    "<m>.weight.asym4_scale / asym4_zero F32 [out/tile_out, in/tile_in]; "
                    "w = scale * q + zero; load with --method qablora");
}

std::unique_ptr<Model> merge_qablora_4bit(const Model& m, ModelOptions opt) {
  StateDictSource merged(merged_asym4_state(m));
  opt.method = "qablora";
  opt.targets = {};
  return Model::create(m.config(), merged, opt);
}

}  // namespace qtrain
