// A llama.cpp LoRA adapter (.gguf with general.type = adapter, adapter.type =
// lora: what `qtrain export --format gguf-lora` and llama.cpp's
// convert_lora_to_gguf.py write) read back as the PEFT LoRA adapter it holds,
// so that eval, generate and export take it as --adapter like a PEFT directory.
//
//   blk.N.<tensor>.weight.lora_a  ne [in, r]  -> base_model.model.<HF module>.lora_A.weight [r, in]
//   blk.N.<tensor>.weight.lora_b  ne [r, out] -> base_model.model.<HF module>.lora_B.weight [out, r]
//
// lora_b rows of attn_q / attn_k are in llama.cpp's RoPE order and are put
// back in HF order for `cfg`'s heads (models/gguf_llama_names.h). llama.cpp
// scales each pair by adapter.lora.alpha / its own rank (scale 1 when alpha is
// absent or 0), which is peft's lora_alpha / r: so lora_alpha = alpha, and a
// pair whose rank differs from the most common one becomes a rank_pattern
// entry. Errors name the file and the key or tensor.
#pragma once
#include <string>

#include "models/model_config.h"
#include "models/peft_io.h"

namespace qtrain {

PeftAdapter read_gguf_lora_adapter(const std::string& path, const ModelConfig& cfg);

}  // namespace qtrain
