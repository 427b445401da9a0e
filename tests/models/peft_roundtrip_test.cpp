// Round trip: adapters WRITTEN BY qtrain train (tests/fixtures/roundtrip/*-qtrain-lora)
// were loaded by HF peft (check_peft_roundtrip.py); peft's loss and LoRA gradients on the
// fixture batch are committed beside them. qtrain reading the same adapter must agree
// within 1e-4, so what qtrain writes is what peft reads. tiny-llama-qtrain-lora-pattern
// adds per-module ranks and alphas (--lora-rank-pattern / --lora-alpha-pattern) and --rslora.
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

class PeftRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftRoundTrip, PeftSeesWhatQtrainWrote) {
  const std::string name = GetParam();  // <model>-qtrain-lora[-variant]
  const std::string model = name.substr(0, name.find("-qtrain-"));
  auto peft = fixture_json("roundtrip/" + name + "-peft.json");
  // The fixture batch: one sequence per line of <model>-eval.jsonl, HF labels.
  std::istringstream data(fixture_text(model + "-eval.jsonl"));
  std::vector<int32_t> ids, targets;
  std::string line;
  int B = 0, T = 0;
  while (std::getline(data, line)) {
    auto row = nlohmann::json::parse(line)["input_ids"];
    T = int(row.size());
    for (int t = 0; t < T; ++t) {
      ids.push_back(row[size_t(t)].get<int32_t>());
      targets.push_back(t + 1 < T ? row[size_t(t + 1)].get<int32_t>() : -100);
    }
    ++B;
  }
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture("roundtrip/" + name));
  ModelOptions opt;
  opt.lora = a.lora;
  opt.targets = a.modules;
  auto m = Model::create(lm.config, *lm.weights, opt);
  apply_peft_adapter(*m, a);
  LossSum s = m->forward({B, T, ids.data(), targets.data()}, 1.f / 30.f);
  ASSERT_EQ(s.count, peft["tokens"].get<int64_t>());
  double want = peft["loss"].get<double>();
  EXPECT_NEAR(s.sum / double(s.count), want, 1e-4 * want);
  m->backward();
  SafetensorsFile grads(fixture("roundtrip/" + name + "-peft-grads.safetensors"));
  ASSERT_EQ(grads.entries().size(), m->params().params().size());
  for (auto& p : m->params().params())
    EXPECT_LT(norm_rel_err(p.grad.to_vector(), grads.load_f32(p.name).to_vector()), 1e-4) << p.name;
}

INSTANTIATE_TEST_SUITE_P(Adapters, PeftRoundTrip,
                         ::testing::Values("tiny-llama-qtrain-lora", "tiny-gpt2-qtrain-lora", "tiny-llama-qtrain-lora-pattern"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });
