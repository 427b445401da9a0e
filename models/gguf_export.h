// Handing models back to llama.cpp: a LoRA adapter GGUF (llama.cpp --lora)
// and a merged model GGUF. Both map HF names to GGUF names and re-apply
// llama.cpp's Q/K RoPE row permutation (models/gguf_llama_names.h).
#pragma once
#include "models/gguf_file.h"
#include <string>
#include <utility>
#include <vector>

#include "kernels/quant/gguf_blocks.h"
#include "kernels/tensor.h"
#include "models/model_config.h"
#include "models/weight_source.h"

namespace qtrain {

// peft_tensors: PEFT names ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
// with PEFT shapes (lora_A [r, in], lora_B [out, r]). Writes general.type =
// adapter, adapter.type = lora, adapter.lora.alpha, and tensors
// "blk.N.<name>.weight.lora_a" (ne [in, r]) / ".lora_b" (ne [r, out]) in F32,
// lora_b rows of attn_q/attn_k permuted like the base rows. llama.cpp scales
// by alpha / r; for rsLoRA (alpha / sqrt(r)) pass alpha * sqrt(r).
void export_gguf_lora(const std::string& out_path, const ModelConfig& cfg,
                      const std::vector<std::pair<std::string, Tensor>>& peft_tensors, float alpha, int r);

// A whole LLaMA model: HF-named F32 tensors (every tensor the model has,
// merged adapters included), llama.* metadata from cfg and tokenizer.* from
// tok. 2-D weights are stored as `type` (F32, F16, BF16 or Q8_0; Q8_0 falls
// back to F16 for rows not a multiple of 32); norms stay F32, as llama.cpp
// stores them. base_metadata, when the base was a GGUF file, is every key of
// it: copied first, so what the merge does not set (add_bos_token,
// add_space_prefix, unknown_token_id, general.type, ...) survives; the keys set
// here (architecture, tokenizer, general.name, general.file_type) replace
// theirs in place. general.alignment and split.* describe the base's file and
// are left out.
void export_gguf_model(const std::string& out_path, const ModelConfig& cfg, const TokenizerSource& tok,
                       const std::vector<std::pair<std::string, Tensor>>& hf_tensors, GgmlType type,
                       const std::string& name = "qtrain-merged",
                       const std::vector<std::pair<std::string, GgufValue>>& base_metadata = {});

}  // namespace qtrain
