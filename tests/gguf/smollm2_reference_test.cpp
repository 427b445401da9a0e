// The default model end to end: SmolLM2-135M-Instruct.Q4_1.gguf loaded by
// qtrain's GGUF path vs transformers' dequantization of the same file
// (tests/fixtures/gguf/smollm2_reference.json, make_smollm2_reference.py):
// config, weight mapping checksums, and the fp32 loss + logits of a fixed
// CodeSearchNet window. Skipped when the model is not in the cache dir.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "models/model.h"
#include "models/model_registry.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

std::string model_path_or_skip() {
  std::string p = registered_model_path("smollm2-135m");
  if (!std::filesystem::exists(p)) return "";
  return p;
}

nlohmann::json reference() {
  return testing::fixture_json("gguf/smollm2_reference.json");
}

#define SKIP_WITHOUT_SMOLLM2(path)                                                                         \
  std::string path = model_path_or_skip();                                                                \
  if (path.empty())                                                                                       \
  GTEST_SKIP() << "skipped: " << registered_model_path("smollm2-135m")                                    \
               << " not found; fetch it with: bash launch/fetch-models.sh"

TEST(SmolLM2, ConfigAndWeightMapping) {
  SKIP_WITHOUT_SMOLLM2(path);
  LoadedModel m = load_model("smollm2-135m");
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.n_layer, 30);
  EXPECT_EQ(c.d_model, 576);
  EXPECT_EQ(c.n_head, 9);
  EXPECT_EQ(c.n_kv_head, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.d_ff, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.f);
  EXPECT_EQ(m.tokenizer.tokens.size(), 49152u);
  EXPECT_EQ(m.tokenizer.merges.size(), 48900u);
  EXPECT_EQ(m.tokenizer.pre, "smollm");
  EXPECT_EQ(m.tokenizer.bos_id, 1);
  EXPECT_EQ(m.tokenizer.eos_id, 2);
  EXPECT_NE(m.tokenizer.chat_template.find("SmolLM"), std::string::npos);

  // Held in a named object: items() of a member of the temporary would dangle in the loop.
  const nlohmann::json want = reference();
  for (auto& [name, ref] : want["weights"].items()) {
    SCOPED_TRACE(name);
    Tensor t = m.weights->load_f32(name);
    EXPECT_EQ(t.shape(), ref["shape"].get<Shape>());
    const int64_t rows = t.size(0), cols = t.numel() / rows;
    const float* p = t.f32();
    double sum = 0, weighted = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double rs = 0;
      for (int64_t k = 0; k < cols; ++k) rs += p[r * cols + k];
      sum += rs;
      weighted += rs * double(r);
    }
    const double s_ref = ref["sum"], w_ref = ref["row_weighted_sum"];
    EXPECT_NEAR(sum, s_ref, 1e-6 * std::max(1.0, std::abs(s_ref)) + 1e-3);
    EXPECT_NEAR(weighted, w_ref, 1e-6 * std::max(1.0, std::abs(w_ref)) + 1e-2);
    std::vector<float> first = ref["first_row"];
    for (size_t k = 0; k < first.size(); ++k) EXPECT_EQ(p[k], first[k]) << "first_row[" << k << "]";
  }
}

// The tokenizer embedded in the GGUF, through data/'s BPE: the same ids as
// HF's tokenizer (built by transformers from the same GGUF) for the window.
// SmolLM2's vocabulary has no token for 21 byte values that never occur in
// UTF-8 text (e.g. 0xC0, 0xF5..0xFF); HF accepts that, so data/ must too.
TEST(SmolLM2, EmbeddedTokenizerMatchesTransformers) {
  SKIP_WITHOUT_SMOLLM2(path);
  nlohmann::json ref = reference();
  LoadedModel m = load_model(path);
  TokenizerSource& ts = m.tokenizer;
  auto tok = Tokenizer::from_vocab_merges(ts.tokens, ts.merges, ts.token_types, ts.pre, ts.bos_id, ts.eos_id);
  std::vector<int32_t> ids = tok->encode(ref["code"].get<std::string>());
  std::vector<int32_t> want = ref["ids"];
  ASSERT_GE(ids.size(), want.size());
  ids.resize(want.size());
  EXPECT_EQ(ids, want);
}

TEST(SmolLM2, EmbeddedChatTemplate) {
  SKIP_WITHOUT_SMOLLM2(path);
  LoadedModel m = load_model(path);
  const TokenizerSource& ts = m.tokenizer;
  ChatTemplate chat(ts.chat_template);
  EXPECT_EQ(chat.render({{"user", "Hi"}}, true, ts.tokens[size_t(ts.bos_id)], ts.tokens[size_t(ts.eos_id)]),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(SmolLM2, EvalLossAndLogitsMatchTransformers) {
  SKIP_WITHOUT_SMOLLM2(path);
  nlohmann::json ref = reference();
  LoadedModel m = load_model(path);
  ModelOptions opt;  // LoRA B starts at zero: the forward is the base model's
  std::unique_ptr<Model> model = Model::create(m.config, *m.weights, opt);
  std::vector<int32_t> ids = ref["ids"];
  const int T = int(ids.size());
  std::vector<int32_t> inputs(ids.begin(), ids.end()), targets(T, -100);
  for (int t = 0; t + 1 < T; ++t) targets[size_t(t)] = ids[size_t(t + 1)];
  TokenBatch b{1, T, inputs.data(), targets.data()};
  LossSum ls = model->forward(b, 0.f);
  ASSERT_EQ(ls.count, T - 1);
  const double loss = ls.sum / double(ls.count), loss_ref = ref["loss"];
  std::printf("SmolLM2 window loss: qtrain %.7f, transformers %.7f (rel diff %.2e)\n", loss, loss_ref,
              std::abs(loss - loss_ref) / loss_ref);
  EXPECT_NEAR(loss, loss_ref, 1e-4 * loss_ref) << "qtrain " << loss << " vs transformers " << loss_ref;

  std::vector<float> logits = model->logits(b).to_vector();
  ASSERT_EQ(logits.size(), size_t(T) * 49152);
  const float* last = logits.data() + size_t(T - 1) * 49152;
  std::vector<float> want = ref["last_logits_first32"];
  std::vector<float> got(last, last + want.size());
  EXPECT_LT(testing::max_rel_err(got, want, 1.0), 1e-3);
  EXPECT_EQ(int(std::max_element(last, last + 49152) - last), ref["last_logits_argmax"].get<int>());
}

}  // namespace
}  // namespace qtrain
