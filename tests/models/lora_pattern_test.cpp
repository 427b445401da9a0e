// Per-module LoRA rank and alpha (peft's rank_pattern / alpha_pattern):
// peft's matching rule, import of a peft adapter against peft's own numbers
// (tests/fixtures/make_pattern_fixtures.py), and export that reloads the same.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/adapters/lora_patterns.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace fs = std::filesystem;

TEST(LoraPatterns, MatchesAsPeftGetPatternKey) {
  // re.match(rf"(.*\.)?({key})$", module): a suffix that starts at a '.' or the start.
  const std::string down0 = "model.layers.0.mlp.down_proj";
  EXPECT_TRUE(pattern_key_matches("down_proj", down0));
  EXPECT_TRUE(pattern_key_matches("mlp.down_proj", down0));
  EXPECT_TRUE(pattern_key_matches(down0, down0));
  EXPECT_TRUE(pattern_key_matches("^model.layers.0.mlp.down_proj", down0));
  EXPECT_TRUE(pattern_key_matches("layers\\.\\d+\\.mlp\\.down_proj", down0));
  EXPECT_TRUE(pattern_key_matches("(up|down)_proj", down0));
  EXPECT_FALSE(pattern_key_matches("proj", down0));          // not at a '.' boundary
  EXPECT_FALSE(pattern_key_matches("_proj", down0));
  EXPECT_FALSE(pattern_key_matches("down", down0));           // must run to the end
  EXPECT_FALSE(pattern_key_matches("layers.0.mlp.down_proj", "model.layers.10.mlp.down_proj"));
  EXPECT_FALSE(pattern_key_matches("^layers.0.mlp.down_proj", down0));
  EXPECT_FALSE(pattern_key_matches("(k|v)_proj", "model.layers.0.mlp.gate_proj"));
  EXPECT_THROW(pattern_key_matches("down_proj(", down0), Error);
}

TEST(LoraPatterns, FirstMatchingKeyWinsRankAndAlphaIndependently) {
  LoraOptions opt;
  opt.r = 4;
  opt.alpha = 8;
  opt.patterns = parse_lora_patterns({"layers.1.mlp.down_proj=2", "down_proj=6"}, {"mlp.down_proj=3", "down_proj=30"});
  LoraOptions d0 = lora_options_for(opt, "model.layers.0.mlp.down_proj");
  LoraOptions d1 = lora_options_for(opt, "model.layers.1.mlp.down_proj");
  LoraOptions q0 = lora_options_for(opt, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(d0.r, 6);
  EXPECT_EQ(d1.r, 2);
  EXPECT_EQ(d0.alpha, 3.f);
  EXPECT_EQ(d1.alpha, 3.f);
  EXPECT_EQ(q0.r, 4);
  EXPECT_EQ(q0.alpha, 8.f);
  EXPECT_EQ(d1.patterns.config_r, 4);  // what adapter_config.json's r stays
  EXPECT_EQ(d1.patterns.config_alpha, 8.f);
}

TEST(LoraPatterns, BadItemsNameTheFlagOrFile) {
  auto msg = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([] { parse_lora_patterns({"down_proj"}, {}); }).find("--lora-rank-pattern: 'down_proj' is not KEY=VALUE"),
            std::string::npos);
  EXPECT_NE(msg([] { parse_lora_patterns({"down_proj=0"}, {}); }).find("whole number >= 1"), std::string::npos);
  EXPECT_NE(msg([] { parse_lora_patterns({"down_proj=2.5"}, {}); }).find("whole number >= 1"), std::string::npos);
  EXPECT_NE(msg([] { parse_lora_patterns({}, {"v_proj=-1"}); }).find("--lora-alpha-pattern"), std::string::npos);
  EXPECT_NE(msg([] { parse_lora_patterns({"[=4"}, {}); }).find("not a valid regular expression"), std::string::npos);
  // "a=b=3": the value follows the last '='
  EXPECT_EQ(parse_lora_patterns({"a=b=3"}, {}).rank.at(0).first, "a=b");

  TempDir tmp;
  fs::copy(fixture("tiny-llama-lora-pattern"), tmp.path / "a");
  auto cfg_path = tmp.path / "a" / "adapter_config.json";
  auto j = nlohmann::json::parse(std::ifstream(cfg_path));
  j["rank_pattern"]["down_proj"] = "six";
  std::ofstream(cfg_path) << j.dump();
  EXPECT_NE(msg([&] { read_peft_adapter((tmp.path / "a").string()); })
                .find("adapter_config.json: field 'rank_pattern' entry 'down_proj' must be a whole number"),
            std::string::npos);
}

namespace {

void expect_loss_and_grads(Model& m, const Ref& r, double want, const SafetensorsFile& ref, const std::string& prefix) {
  m.params().zero_grads();
  LossSum s = m.forward(r.batch(), float(1.0 / double(r.B * (r.T - 1))));
  EXPECT_NEAR(s.sum / double(s.count), want, 1e-4 * want) << prefix;
  m.backward();
  expect_grads_match_peft(m, ref, 1e-4, prefix);
}

}  // namespace

TEST(LoraPatterns, PeftAdapterWithPatternsMatchesPeft) {
  auto ref_json = fixture_json("tiny-llama-lora-pattern-ref.json");
  SafetensorsFile ref(fixture("tiny-llama-lora-pattern-ref.safetensors"));
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora-pattern"));
  ASSERT_EQ(a.lora.patterns.rank.size(), 3u);
  EXPECT_EQ(a.lora.patterns.rank[0].first, "layers.1.mlp.down_proj");  // file order, not sorted
  // Every module's r, alpha and scale as peft resolved them.
  for (auto& [module, want] : ref_json["modules"].items()) {
    LoraOptions o = lora_options_for(a.lora, module);
    EXPECT_EQ(o.r, want["r"].get<int>()) << module;
    EXPECT_EQ(o.alpha, want["alpha"].get<float>()) << module;
    EXPECT_NEAR(o.scale(), want["scale"].get<double>(), 1e-6) << module;
  }
  auto m = build_with_adapter(lm, a);
  EXPECT_LT(norm_rel_err(m->logits(r.batch()).to_vector(), ref.load_f32("logits").to_vector()), 1e-4);
  expect_loss_and_grads(*m, r, ref_json["loss"].get<double>(), ref, "");
  // The same tensors with use_rslora: peft's alpha / sqrt(r), per module.
  a.lora.rslora = true;
  auto rs = build_with_adapter(lm, a);
  expect_loss_and_grads(*rs, r, ref_json["rslora_loss"].get<double>(), ref, "rslora.");
}

TEST(LoraPatterns, ExportWritesEachModulesRankAndAlphaAndReloads) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions opt;
  opt.lora.r = 4;
  opt.lora.alpha = 8;
  opt.lora.patterns = parse_lora_patterns({"layers.1.mlp.down_proj=2", "down_proj=6", "q_proj=4"}, {"(k|v)_proj=3"});
  auto m = Model::create(lm.config, *lm.weights, opt);
  uint64_t seed = 40;
  for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.1f));
  TempDir tmp;
  const std::string dir = (tmp.path / "adapter").string();
  save_peft_adapter(dir, *m, "tiny-llama");

  auto cfg = nlohmann::json::parse(std::ifstream(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  // One full-path entry per module whose value differs from r / lora_alpha; q_proj=4 equals r: none.
  nlohmann::json want_rank = {{"model.layers.0.mlp.down_proj", 6}, {"model.layers.1.mlp.down_proj", 2}};
  EXPECT_EQ(cfg["rank_pattern"], want_rank);
  nlohmann::json want_alpha = nlohmann::json::object();
  for (const char* l : {"0", "1"})
    for (const char* p : {"k_proj", "v_proj"}) want_alpha[std::string("model.layers.") + l + ".self_attn." + p] = 3.0;
  EXPECT_EQ(cfg["alpha_pattern"], want_alpha);

  SafetensorsFile st(dir + "/adapter_model.safetensors");
  auto shape = [&](const std::string& module, const char* which) {
    return st.find("base_model.model." + module + "." + which + ".weight")->shape;
  };
  EXPECT_EQ(shape("model.layers.0.mlp.down_proj", "lora_A"), (Shape{6, 160}));
  EXPECT_EQ(shape("model.layers.1.mlp.down_proj", "lora_B"), (Shape{64, 2}));
  EXPECT_EQ(shape("model.layers.1.mlp.up_proj", "lora_A"), (Shape{4, 64}));

  // Read back (as eval/generate --adapter do): the same outputs, bit for bit.
  Ref r = load_ref("tiny-llama");
  PeftAdapter a = read_peft_adapter(dir);
  auto back = build_with_adapter(lm, a);
  EXPECT_EQ(back->logits(r.batch()).to_vector(), m->logits(r.batch()).to_vector());
}
