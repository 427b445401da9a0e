#include "models/gguf_export.h"

#include <map>

#include "models/gguf_llama_names.h"
#include "models/gguf_writer.h"

namespace qtrain {

namespace {

// Rows of an HF [out, ...] tensor reordered as llama.cpp stores them.
Tensor permute_rows_for_gguf(const Tensor& t, int heads) {
  Tensor src = t.to(Device::CPU, DType::F32);
  if (heads <= 0) return src;
  const int64_t rows = src.size(0), cols = src.numel() / std::max<int64_t>(rows, 1);
  if (rows % heads != 0 || (rows / heads) % 2 != 0)
    throw Error("cannot apply the RoPE row permutation: " + std::to_string(rows) + " rows are not " +
                std::to_string(heads) + " even-sized heads");
  Tensor out = Tensor::empty(src.shape(), DType::F32);
  const float* s = src.f32();
  float* d = out.f32();
  for (int64_t r = 0; r < rows; ++r)
    std::copy(s + r * cols, s + (r + 1) * cols, d + rope_permuted_row(r, rows, heads) * cols);
  return out;
}

void set_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name) {
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_u32("llama.block_count", uint32_t(c.n_layer));
  w.set_u32("llama.context_length", uint32_t(c.max_pos));
  w.set_u32("llama.embedding_length", uint32_t(c.d_model));
  w.set_u32("llama.feed_forward_length", uint32_t(c.d_ff));
  w.set_u32("llama.attention.head_count", uint32_t(c.n_head));
  w.set_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_head));
  w.set_f32("llama.rope.freq_base", c.rope_theta);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_u32("llama.vocab_size", uint32_t(c.vocab_size));
  w.set_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  if (c.head_dim * c.n_head != c.d_model) {
    w.set_u32("llama.attention.key_length", uint32_t(c.head_dim));
    w.set_u32("llama.attention.value_length", uint32_t(c.head_dim));
  }
}

void check_llama(const ModelConfig& c, const std::string& path) {
  if (c.arch != Arch::Llama)
    throw Error(path + ": GGUF export supports LLaMA-architecture models only (this one is GPT-2)");
}

}  // namespace

void export_gguf_lora(const std::string& out_path, const ModelConfig& cfg,
                      const std::vector<std::pair<std::string, Tensor>>& peft_tensors, float alpha, int r) {
  check_llama(cfg, out_path);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.type", "adapter");
  w.set_string("general.name", "qtrain-lora");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", alpha);
  const std::string prefix = "base_model.model.";
  std::map<std::string, int> pairs;  // gguf base name -> bit 1: lora_a, bit 2: lora_b
  for (auto& [peft_name, t] : peft_tensors) {
    const bool is_a = peft_name.find(".lora_A.") != std::string::npos;
    const bool is_b = peft_name.find(".lora_B.") != std::string::npos;
    const std::string marker = is_a ? ".lora_A." : ".lora_B.";
    if (peft_name.compare(0, prefix.size(), prefix) != 0 || (!is_a && !is_b))
      throw Error(out_path + ": '" + peft_name + "' is not a PEFT LoRA tensor name "
                  "(base_model.model.<module>.lora_A.weight / .lora_B.weight)");
    const std::string module = peft_name.substr(prefix.size(), peft_name.find(marker) - prefix.size());
    const std::string hf = module + ".weight";
    const std::string gguf = hf_to_gguf_llama_name(hf);
    if (gguf.empty() || gguf.find("blk.") != 0 || gguf.find("norm") != std::string::npos)
      throw Error(out_path + ": no llama.cpp LoRA target for '" + peft_name + "' (module " + module + ")");
    if (t.ndim() != 2 || (is_a ? t.size(0) : t.size(1)) != r)
      throw Error(out_path + ": '" + peft_name + "' has shape " + shape_str(t.shape()) + ", expected rank " +
                  std::to_string(r) + (is_a ? " rows" : " columns"));
    // PEFT's [r, in] / [out, r] are exactly llama.cpp's ne [in, r] / [r, out].
    const int heads = is_b ? rope_permuted_heads(hf, cfg.n_head, cfg.n_kv_head) : 0;
    w.add_tensor(gguf + (is_a ? ".lora_a" : ".lora_b"), permute_rows_for_gguf(t, heads), GgmlType::F32);
    pairs[gguf] |= is_a ? 1 : 2;
  }
  for (auto& [name, bits] : pairs)
    if (bits != 3) throw Error(out_path + ": LoRA pair for '" + name + "' is missing its " + (bits == 1 ? "B" : "A"));
  if (pairs.empty()) throw Error(out_path + ": no LoRA tensors to export");
  w.write(out_path);
}

void export_gguf_model(const std::string& out_path, const ModelConfig& cfg, const TokenizerSource& tok,
                       const std::vector<std::pair<std::string, Tensor>>& hf_tensors, GgmlType type,
                       const std::string& name, const std::vector<std::pair<std::string, GgufValue>>& base_metadata) {
  check_llama(cfg, out_path);
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (!info.from_float || info.file_type < 0)
    throw Error(out_path + std::string(": cannot write a merged model as ") + info.name + " (" +
                ggml_type_names([](const GgmlTypeInfo& t) { return t.from_float && t.file_type >= 0; }) + ")");
  GgufWriter w;
  for (const auto& [key, value] : base_metadata)
    if (key != "general.alignment" && key.rfind("split.", 0) != 0) w.set(key, value);
  set_llama_metadata(w, cfg, name);
  w.set_u32("general.file_type", uint32_t(info.file_type));  // llama_ftype, from the type's table entry
  if (!tok.tokens.empty()) {
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", tok.pre.empty() ? "default" : tok.pre);
    w.set_string_array("tokenizer.ggml.tokens", tok.tokens);
    if (!tok.token_types.empty()) {
      std::vector<GgufValue> types;
      for (int32_t t : tok.token_types) types.push_back(GgufValue::of_int(GgufValueType::I32, t));
      w.set("tokenizer.ggml.token_type", GgufValue::of_array(GgufValueType::I32, std::move(types)));
    }
    if (!tok.merges.empty()) w.set_string_array("tokenizer.ggml.merges", tok.merges);
    if (tok.bos_id >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id));
    if (tok.eos_id >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id));
    if (tok.pad_id >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(tok.pad_id));
    if (!tok.chat_template.empty()) w.set_string("tokenizer.chat_template", tok.chat_template);
  }
  for (auto& [hf, t] : hf_tensors) {
    if (hf == "lm_head.weight" && cfg.tied_embeddings) continue;  // llama.cpp ties when output is absent
    const std::string gguf = hf_to_gguf_llama_name(hf);
    if (gguf.empty()) throw Error(out_path + ": no GGUF name for tensor '" + hf + "'");
    Tensor x = permute_rows_for_gguf(t, rope_permuted_heads(hf, cfg.n_head, cfg.n_kv_head));
    GgmlType tt = x.ndim() < 2 ? GgmlType::F32 : type;
    if (x.size(-1) % ggml_type_info(tt).block_size != 0) tt = GgmlType::F16;  // rows not whole blocks
    w.add_tensor(gguf, x, tt);
  }
  w.write(out_path);
}

}  // namespace qtrain
