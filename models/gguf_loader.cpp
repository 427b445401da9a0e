// load_gguf_model: a llama.cpp GGUF file -> ModelConfig (from llama.*
// metadata), a WeightSource under HF names, and the embedded tokenizer.
#include <memory>

#include "models/gguf_file.h"
#include "models/gguf_weights.h"
#include "models/weight_source.h"

namespace qtrain {

namespace {

int positive_int(const GgufFile& f, const std::string& key, int64_t v) {
  if (v <= 0 || v > (int64_t(1) << 30))
    throw Error(f.path() + ": metadata '" + key + "' = " + std::to_string(v) + " is out of range");
  return int(v);
}

ModelConfig config_from_metadata(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama")
    throw Error(f.path() + ": unsupported architecture '" + arch + "' (general.architecture); qtrain reads "
                "'llama' GGUF files (LLaMA, SmolLM, Mistral-style dense models)");
  auto req = [&](const std::string& k) { return positive_int(f, "llama." + k, f.get_int("llama." + k)); };
  ModelConfig c;
  c.arch = Arch::Llama;
  c.source = f.path();
  c.n_layer = req("block_count");
  c.d_model = req("embedding_length");
  c.d_ff = req("feed_forward_length");
  c.n_head = req("attention.head_count");
  c.n_kv_head = positive_int(f, "llama.attention.head_count_kv", f.get_int("llama.attention.head_count_kv", c.n_head));
  if (c.n_head % c.n_kv_head != 0)
    throw Error(f.path() + ": llama.attention.head_count " + std::to_string(c.n_head) +
                " is not a multiple of head_count_kv " + std::to_string(c.n_kv_head));
  c.head_dim = positive_int(f, "llama.attention.key_length",
                            f.get_int("llama.attention.key_length", c.d_model / c.n_head));
  int64_t rot = f.get_int("llama.rope.dimension_count", c.head_dim);
  if (rot != c.head_dim)
    throw Error(f.path() + ": llama.rope.dimension_count " + std::to_string(rot) + " != head size " +
                std::to_string(c.head_dim) + ": partial rotary embeddings are not supported");
  std::string scaling = f.get_string("llama.rope.scaling.type", "none");
  if (scaling != "none" || f.find_tensor("rope_freqs.weight"))
    throw Error(f.path() + ": RoPE scaling ('" + (scaling != "none" ? scaling : std::string("rope_freqs")) +
                "') is not supported");
  c.max_pos = positive_int(f, "llama.context_length", f.get_int("llama.context_length", 2048));
  c.norm_eps = float(f.get_float("llama.attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = float(f.get_float("llama.rope.freq_base", 10000.0));
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) throw Error(f.path() + ": missing 2-D tensor 'token_embd.weight'");
  c.vocab_size = positive_int(f, "llama.vocab_size", f.get_int("llama.vocab_size", embd->ne[1]));
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attn_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.mlp_bias = false;
  c.bos_id = int(f.get_int("tokenizer.ggml.bos_token_id", -1));
  c.eos_id = int(f.get_int("tokenizer.ggml.eos_token_id", -1));
  c.pad_id = int(f.get_int("tokenizer.ggml.padding_token_id", -1));
  return c;
}

// Every tensor the LLaMA model reads, with the HF shape it must have.
void check_shapes(const GgufWeightSource& w, const ModelConfig& c) {
  const int64_t d = c.d_model, q = int64_t(c.n_head) * c.head_dim, kv = int64_t(c.n_kv_head) * c.head_dim;
  auto expect = [&](const std::string& name, const Shape& s) {
    if (!w.has(name)) throw Error(w.path() + ": missing tensor for '" + name + "'");
    if (w.shape(name) != s)
      throw Error(w.path() + ": tensor for '" + name + "' has shape " + shape_str(w.shape(name)) + ", expected " +
                  shape_str(s) + " from the llama.* metadata");
  };
  expect("model.embed_tokens.weight", {c.vocab_size, d});
  expect("model.norm.weight", {d});
  if (!c.tied_embeddings) expect("lm_head.weight", {c.vocab_size, d});
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expect(p + "self_attn.q_proj.weight", {q, d});
    expect(p + "self_attn.k_proj.weight", {kv, d});
    expect(p + "self_attn.v_proj.weight", {kv, d});
    expect(p + "self_attn.o_proj.weight", {d, q});
    expect(p + "mlp.gate_proj.weight", {c.d_ff, d});
    expect(p + "mlp.up_proj.weight", {c.d_ff, d});
    expect(p + "mlp.down_proj.weight", {d, c.d_ff});
    expect(p + "input_layernorm.weight", {d});
    expect(p + "post_attention_layernorm.weight", {d});
  }
}

TokenizerSource tokenizer_from_metadata(const GgufFile& f) {
  TokenizerSource t;
  const std::string model = f.get_string("tokenizer.ggml.model", "");
  if (model != "gpt2")
    throw Error(f.path() + ": tokenizer.ggml.model is '" + model + "'; qtrain supports the byte-level BPE "
                "tokenizer ('gpt2') of GGUF files");
  t.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.find("tokenizer.ggml.merges")) t.merges = f.get_string_array("tokenizer.ggml.merges");
  if (f.find("tokenizer.ggml.token_type")) {
    for (int64_t v : f.get_int_array("tokenizer.ggml.token_type")) t.token_types.push_back(int32_t(v));
    if (t.token_types.size() != t.tokens.size())
      throw Error(f.path() + ": tokenizer.ggml.token_type has " + std::to_string(t.token_types.size()) +
                  " entries, tokenizer.ggml.tokens " + std::to_string(t.tokens.size()));
  }
  t.pre = f.get_string("tokenizer.ggml.pre", "default");
  t.chat_template = f.get_string("tokenizer.chat_template", "");
  const int64_t n = int64_t(t.tokens.size());
  auto id = [&](const char* key) {
    int64_t v = f.get_int(key, -1);
    if (v < -1 || v >= n)
      throw Error(f.path() + ": metadata '" + key + "' = " + std::to_string(v) + " is not a token id (vocab " +
                  std::to_string(n) + ")");
    return int32_t(v);
  };
  t.bos_id = id("tokenizer.ggml.bos_token_id");
  t.eos_id = id("tokenizer.ggml.eos_token_id");
  t.pad_id = id("tokenizer.ggml.padding_token_id");
  return t;
}

}  // namespace

LoadedModel load_gguf_model(const std::string& path) {
  auto file = std::make_shared<const GgufFile>(path);
  LoadedModel m;
  m.config = config_from_metadata(*file);
  auto weights = std::make_unique<GgufWeightSource>(file, m.config.n_head, m.config.n_kv_head);
  check_shapes(*weights, m.config);
  m.weights = std::move(weights);
  m.tokenizer = tokenizer_from_metadata(*file);
  m.gguf = file;
  if (m.tokenizer.tokens.size() > size_t(m.config.vocab_size))
    throw Error(path + ": tokenizer has " + std::to_string(m.tokenizer.tokens.size()) + " tokens, the embedding " +
                std::to_string(m.config.vocab_size) + " rows");
  return m;
}

}  // namespace qtrain
