// A BitNet b1.58 model in its stored form (qtrain export --format ternary):
// every block Linear as 2-bit ternary codes plus its scale and SubLN flag
// (models/ternary_weight.h's tensors), everything else (embeddings, norms,
// lm_head, biases) in F32, with the base directory's config.json and
// tokenizer files. qtrain loads it back with --method bitnet-lora (generate,
// eval, or training adapters on it).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"

namespace qtrain {

// The state of a model whose Linears hold TernaryWeight bases (--method
// bitnet-lora) and no adapters; a user error otherwise.
std::vector<std::pair<std::string, Tensor>> ternary_state(const Model& m);
// Writes it to dir/model.safetensors, with the base's config and tokenizer
// files (models/merged_model.h: copy_model_files).
void save_ternary_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                        const std::string& base, const ModelConfig& cfg);

}  // namespace qtrain
