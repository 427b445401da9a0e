#include "models/gguf_llama_names.h"

#include <cstdlib>
#include <utility>

namespace qtrain {

namespace {

// Per-block tensors: GGUF suffix after "blk.N." and the HF suffix after
// "model.layers.N.".
const std::pair<const char*, const char*> kBlockNames[] = {
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
};
const std::pair<const char*, const char*> kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// "<prefix><digits>.<rest>" -> (layer, rest); false if it does not match.
bool split_layer(const std::string& name, const std::string& prefix, int& layer, std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 6 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return false;
  layer = std::atoi(name.substr(i, j - i).c_str());
  rest = name.substr(j + 1);
  return true;
}

}  // namespace

std::string gguf_to_hf_llama_name(const std::string& g) {
  for (auto& [gg, hf] : kGlobalNames)
    if (g == gg) return hf;
  int layer;
  std::string rest;
  if (!split_layer(g, "blk.", layer, rest)) return "";
  for (auto& [gg, hf] : kBlockNames)
    if (rest == gg) return "model.layers." + std::to_string(layer) + "." + hf;
  return "";
}

std::string hf_to_gguf_llama_name(const std::string& h) {
  for (auto& [gg, hf] : kGlobalNames)
    if (h == hf) return gg;
  int layer;
  std::string rest;
  if (!split_layer(h, "model.layers.", layer, rest)) return "";
  for (auto& [gg, hf] : kBlockNames)
    if (rest == hf) return "blk." + std::to_string(layer) + "." + gg;
  return "";
}

int rope_permuted_heads(const std::string& hf_name, int n_head, int n_kv_head) {
  auto ends_with = [&](const char* s) {
    std::string suf(s);
    return hf_name.size() >= suf.size() && hf_name.compare(hf_name.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends_with("self_attn.q_proj.weight") || ends_with("self_attn.q_proj.bias")) return n_head;
  if (ends_with("self_attn.k_proj.weight") || ends_with("self_attn.k_proj.bias")) return n_kv_head;
  return 0;
}

}  // namespace qtrain
