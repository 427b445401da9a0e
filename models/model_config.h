// The architecture description every loader (HF config.json, GGUF metadata)
// fills in, and every model reads.
#pragma once
#include <string>

namespace qtrain {

enum class Arch { GPT2, Llama };

struct ModelConfig {
  Arch arch = Arch::GPT2;
  int vocab_size = 0;   // rows of the embedding (may exceed the tokenizer's vocab)
  int n_layer = 0;
  int n_head = 0;
  int n_kv_head = 0;    // == n_head without GQA
  int d_model = 0;      // hidden size
  int d_ff = 0;         // MLP inner size (GPT-2: 4*d_model unless n_inner)
  int head_dim = 0;     // d_model / n_head unless the config says otherwise
  int max_pos = 0;      // GPT-2 learned positions; LLaMA max_position_embeddings
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  bool tied_embeddings = true;
  bool attn_bias = false;  // LLaMA attention_bias
  bool mlp_bias = false;   // LLaMA mlp_bias
  int bos_id = -1, eos_id = -1, pad_id = -1;
  std::string source;      // file it came from, for messages

  // Reads an HF config.json ("GPT2LMHeadModel" / "LlamaForCausalLM"). Missing
  // or wrong fields are errors naming the file and the field.
  static ModelConfig from_hf_json(const std::string& path);
  // The same from the file's contents; `path` names it in messages.
  static ModelConfig from_hf_json_text(const std::string& text, const std::string& path);
  // Writes the config.json from_hf_json reads back as this config (a model
  // trained from a GGUF file, saved as an HF directory).
  void write_hf_json(const std::string& path) const;
};

}  // namespace qtrain
