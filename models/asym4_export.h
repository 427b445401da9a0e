// QA-BLoRA's exact merge: a model whose Linears hold asymmetric 4-bit tiles
// (models/asym4_weight.h, the qablora method) with QA-BLoRA adapters on the same
// tiles merges into the same codes and scales with shifted zeros, so the merged
// model is pure 4-bit and computes what the adapter did (up to F32 rounding of
// the zeros). Merging in float and quantizing again (requantize to NF4, as
// QLoRA deploys) loses that.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"

namespace qtrain {

// Whether any Linear of m holds an asymmetric 4-bit base.
bool has_asym4_base(const Model& m);
// The merged model's tensors under HF names: each Linear as <m>.weight (U8
// codes), <m>.weight.asym4_scale and <m>.weight.asym4_zero (its adapter folded
// into the zeros), everything else F32. A user error unless every Linear holds
// an asymmetric 4-bit base and every adapter is QA-BLoRA on its tiles.
std::vector<std::pair<std::string, Tensor>> merged_asym4_state(const Model& m);
// Writes that state to dir/model.safetensors (codes U8, the rest F32) with
// the base's config and tokenizer files (models/merged_model.h:
// copy_model_files); qtrain loads it back with --method qablora.
void save_asym4_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                      const std::string& base_dir, const ModelConfig& cfg);
// That state rebuilt as a model (method qablora, no adapters): what the export loads as.
std::unique_ptr<Model> merge_qablora_4bit(const Model& m, ModelOptions opt);

}  // namespace qtrain
