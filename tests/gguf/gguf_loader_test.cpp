// load_gguf_model on a tiny random LLaMA laid out by llama.cpp's conventions
// (tests/fixtures/gguf/tiny_llama.gguf) vs transformers' own GGUF loader
// (tiny_llama_expected.safetensors): HF names, shapes, Q/K un-permutation,
// config and tokenizer metadata.
#include "models/gguf_llama_names.h"
#include "models/gguf_weights.h"
#include "models/model_registry.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

TEST(GgufLoader, TinyLlamaMatchesTransformers) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_kv_head, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.d_ff, 96);
  EXPECT_EQ(c.vocab_size, 40);
  EXPECT_EQ(c.max_pos, 128);
  EXPECT_FLOAT_EQ(c.rope_theta, 50000.f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(c.pad_id, 0);

  SafetensorsFile want(testing::fixture("gguf/tiny_llama_expected.safetensors"));
  std::vector<std::string> names = m.weights->names();
  EXPECT_EQ(names.size(), want.entries().size());
  for (auto& e : want.entries()) {
    ASSERT_TRUE(m.weights->has(e.name)) << e.name;
    EXPECT_EQ(m.weights->shape(e.name), e.shape) << e.name;
    std::vector<float> got = m.weights->load_f32(e.name).to_vector();
    std::vector<float> ref = want.load_f32(e.name).to_vector();
    EXPECT_EQ(got, ref) << e.name;  // dequantization and permutation are exact
  }
  EXPECT_FALSE(m.weights->has("lm_head.weight"));

  EXPECT_EQ(m.tokenizer.tokens.size(), 40u);
  EXPECT_EQ(m.tokenizer.tokens[1], "<|im_start|>");
  EXPECT_EQ(m.tokenizer.merges.front(), "h e");
  EXPECT_EQ(m.tokenizer.token_types[0], 3);
  EXPECT_EQ(m.tokenizer.pre, "smollm");
  EXPECT_NE(m.tokenizer.chat_template.find("<|im_start|>assistant"), std::string::npos);
  EXPECT_EQ(m.tokenizer.bos_id, 1);
}

TEST(GgufLoader, RawRowsFollowHfOrder) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  auto& w = dynamic_cast<GgufWeightSource&>(*m.weights);
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  GgufRawTensor raw = w.raw(q);
  EXPECT_EQ(raw.type, GgmlType::Q8_0);
  EXPECT_EQ(raw.permuted_heads, 4);
  std::vector<float> full = w.load_f32(q).to_vector(), row(64);
  for (int64_t r = 0; r < raw.rows; ++r) {
    dequantize_row(raw.type, raw.row(r), row.data(), raw.cols);
    EXPECT_TRUE(std::equal(row.begin(), row.end(), full.begin() + r * 64)) << "row " << r;
  }
}

TEST(GgufLlamaNames, BothWays) {
  EXPECT_EQ(gguf_to_hf_llama_name("blk.12.attn_output.weight"), "model.layers.12.self_attn.o_proj.weight");
  EXPECT_EQ(gguf_to_hf_llama_name("blk.0.ffn_norm.weight"), "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(gguf_to_hf_llama_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(gguf_to_hf_llama_name("blk.x.attn_q.weight"), "");
  EXPECT_EQ(gguf_to_hf_llama_name("rope_freqs.weight"), "");
  EXPECT_EQ(hf_to_gguf_llama_name("model.layers.7.mlp.down_proj.weight"), "blk.7.ffn_down.weight");
  EXPECT_EQ(hf_to_gguf_llama_name("model.embed_tokens.weight"), "token_embd.weight");
  // head of 4 rows: HF [a0 a1 b0 b1] is stored [a0 b0 a1 b1]
  EXPECT_EQ(rope_permuted_row(0, 8, 2), 0);
  EXPECT_EQ(rope_permuted_row(1, 8, 2), 2);
  EXPECT_EQ(rope_permuted_row(2, 8, 2), 1);
  EXPECT_EQ(rope_permuted_row(7, 8, 2), 7);
  EXPECT_EQ(rope_permuted_row(5, 8, 2), 6);
}

TEST(GgufLoader, UnsupportedArchitecture) {
  // blocks.gguf says general.architecture = "blocks_fixture"
  try {
    load_gguf_model(testing::fixture("gguf/blocks.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'blocks_fixture'"), std::string::npos)
        << e.what();
  }
}

TEST(ModelRegistry, MissingRegisteredModelSaysHowToFetch) {
  const char* old = std::getenv("QTRAIN_MODELS");
  std::string saved = old ? old : "";
  setenv("QTRAIN_MODELS", "/nonexistent-qtrain-models", 1);
  EXPECT_EQ(registered_model_path("smollm2-135m"), "/nonexistent-qtrain-models/SmolLM2-135M-Instruct.Q4_1.gguf");
  try {
    load_model("smollm2-135m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bash launch/fetch-models.sh"), std::string::npos) << e.what();
  }
  try {
    load_model("no-such-model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("smollm2-135m"), std::string::npos) << e.what();
  }
  if (old) setenv("QTRAIN_MODELS", saved.c_str(), 1);
  else unsetenv("QTRAIN_MODELS");
  // A .gguf path dispatches to the GGUF loader.
  EXPECT_EQ(load_model(testing::fixture("gguf/tiny_llama.gguf")).config.n_layer, 2);
}

}  // namespace
}  // namespace qtrain
