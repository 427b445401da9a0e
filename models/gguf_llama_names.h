// How llama.cpp's converter names and lays out LLaMA tensors, both ways:
// GGUF names <-> HF names, and the Q/K row permutation it applies for its
// RoPE (convert_hf_to_gguf.py: LlamaModel.permute). Shared by the GGUF loader
// (which undoes it) and the LoRA/model exporters (which apply it).
#pragma once
#include <cstdint>
#include <string>

namespace qtrain {

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight";
// "" for a name that is not a LLaMA tensor (e.g. "rope_freqs.weight").
std::string gguf_to_hf_llama_name(const std::string& gguf_name);
// The inverse; "" when unknown.
std::string hf_to_gguf_llama_name(const std::string& hf_name);

// Heads whose rows llama.cpp permutes: n_head for q_proj, n_kv_head for
// k_proj, 0 (no permutation) for every other tensor.
int rope_permuted_heads(const std::string& hf_name, int n_head, int n_kv_head);

// Row r of the HF matrix is row rope_permuted_row(r) of the GGUF matrix.
// Within each head of size hd = rows / n_heads, HF keeps the two RoPE halves
// apart (i and i + hd/2); GGUF interleaves them (2i and 2i + 1).
inline int64_t rope_permuted_row(int64_t hf_row, int64_t rows, int n_heads) {
  const int64_t hd = rows / n_heads, half = hd / 2;
  const int64_t h = hf_row / hd, in = hf_row % hd;
  const int64_t s = in / half, i = in % half;
  return h * hd + 2 * i + s;
}

}  // namespace qtrain
