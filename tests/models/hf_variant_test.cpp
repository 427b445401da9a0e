// tiny-llama under other storage and config layouts (tests/fixtures, made by
// make_model_fixtures.py): BF16 weights with rope_theta only inside transformers-5's
// "rope_parameters" (a loader that misses it falls back to 10000 and is 4e-3 off),
// and F16 weights, whose effect on the logits (9e-4) is visible where the loss (2.5e-5) is not.
#include <nlohmann/json.hpp>

#include <fstream>

#include "models/model.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

struct Variant {
  double loss = 0;
  std::vector<float> logits;  // [B*T, V]
};

Variant run(const std::string& dir, const nlohmann::json& ref, ModelConfig* cfg_out = nullptr) {
  LoadedModel lm = load_hf_model_dir(fixture(dir));
  if (cfg_out) *cfg_out = lm.config;
  ModelOptions opt;
  opt.method = "lora";
  auto m = Model::create(lm.config, *lm.weights, opt);
  std::vector<int32_t> ids, targets;
  for (auto& row : ref["input_ids"])
    for (size_t t = 0; t < row.size(); ++t) {
      ids.push_back(row[t].get<int32_t>());
      targets.push_back(t + 1 < row.size() ? row[t + 1].get<int32_t>() : -100);
    }
  TokenBatch b{int(ref["input_ids"].size()), int(ref["input_ids"][0].size()), ids.data(), targets.data()};
  Variant v;
  LossSum s = m->forward(b, 0.f);
  v.loss = s.sum / double(s.count);
  v.logits = m->logits(b).to_vector();
  return v;
}

nlohmann::json llama_ref() {
  return fixture_json("tiny-llama-ref.json");
}

TEST(HfVariant, RopeThetaFromRopeParametersWithBf16Weights) {
  auto ref = llama_ref();
  ModelConfig cfg;
  Variant v = run("tiny-llama-bf16-rope500k", ref, &cfg);
  EXPECT_EQ(cfg.rope_theta, 500000.f);
  double want = ref["rope500k_loss"].get<double>();
  EXPECT_NEAR(v.loss, want, 1e-4 * want);
  SafetensorsFile st(fixture("tiny-llama-ref.safetensors"));
  EXPECT_LT(norm_rel_err(v.logits, st.load_f32("rope500k_logits").to_vector()), 1e-4);
}

TEST(HfVariant, F16WeightsLogits) {
  auto ref = llama_ref();
  Variant v = run("tiny-llama-f16", ref);
  SafetensorsFile st(fixture("tiny-llama-ref.safetensors"));
  EXPECT_LT(norm_rel_err(v.logits, st.load_f32("f16_logits").to_vector()), 1e-4);
  // The F32 logits are 9e-4 away: this test would notice F16 decoded as something else.
  EXPECT_GT(norm_rel_err(st.load_f32("logits").to_vector(), st.load_f32("f16_logits").to_vector()), 3e-4);
}

}  // namespace

// A checkpoint already quantized by bitsandbytes / GPTQ / AWQ holds packed
// weights qtrain cannot read (e.g. export --requantize's output): its config
// is refused by name, not by a shape error on the first packed tensor. The
// "gguf" entry transformers writes when it loads a GGUF describes float weights.
TEST(HfVariant, PreQuantizedConfigIsRefusedByName) {
  const std::string base = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 32, "num_hidden_layers": 1,
      "num_attention_heads": 4, "hidden_size": 64, "intermediate_size": 96, "quantization_config": )";
  for (const char* method : {"bitsandbytes", "gptq", "awq"}) {
    try {
      ModelConfig::from_hf_json_text(base + R"({"quant_method": ")" + method + "\"}}", "m/config.json");
      ADD_FAILURE() << method << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      const std::string msg = e.what();
      EXPECT_NE(msg.find("m/config.json: field 'quantization_config'"), std::string::npos) << msg;
      EXPECT_NE(msg.find(method), std::string::npos) << msg;
    }
  }
  EXPECT_NO_THROW(ModelConfig::from_hf_json_text(base + R"({"quant_method": "gguf", "gguf_file": "x.gguf"}})",
                                                 "m/config.json"));
}
