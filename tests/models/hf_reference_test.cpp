// The CPU backend against HF transformers + peft (fixtures made by
// tests/fixtures/make_model_fixtures.py): logits, loss and gradients agree
// within 1e-4 relative.
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

TokenBatch batch(const Ref& r) { return {r.B, r.T, r.ids.data(), r.targets.data()}; }

std::unique_ptr<Model> build(const std::string& dir, const std::string& method, const PeftAdapter* adapter) {
  LoadedModel lm = load_hf_model_dir(fixture(dir));
  ModelOptions opt;
  opt.method = method;
  if (adapter) opt = with_adapter_options(opt, *adapter);
  auto m = Model::create(lm.config, *lm.weights, opt);
  if (adapter) apply_peft_adapter(*m, *adapter);
  return m;
}

// Slices the first `cols` vocabulary columns of [N, V] logits.
std::vector<float> first_cols(const Tensor& logits, int64_t cols) {
  auto v = logits.to_vector();
  int64_t V = logits.size(1);
  std::vector<float> out;
  for (int64_t n = 0; n < logits.size(0); ++n)
    for (int64_t c = 0; c < cols; ++c) out.push_back(v[size_t(n * V + c)]);
  return out;
}

void expect_logits(Model& m, const Ref& r, const std::string& model, const std::string& key) {
  SafetensorsFile ref(fixture(model + "-ref.safetensors"));
  Tensor want = ref.load_f32(key);
  int64_t cols = want.size(-1);
  auto got = first_cols(m.logits(batch(r)), cols);
  EXPECT_LT(norm_rel_err(got, want.to_vector()), 1e-4) << model << " " << key;
}

double mean_loss(Model& m, const Ref& r, float grad_scale = 0.f) {
  LossSum s = m.forward(batch(r), grad_scale);
  return s.sum / double(s.count);
}

}  // namespace

class HfReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReference, BaseLogitsAndLoss) {
  const std::string model = GetParam();
  Ref r = load_ref(model);
  auto m = build(model, "lora", nullptr);
  expect_logits(*m, r, model, "logits");
  EXPECT_NEAR(mean_loss(*m, r), r.j["loss"].get<double>(), 1e-4 * r.j["loss"].get<double>());
}

TEST_P(HfReference, PeftAdapterLogitsLossAndGrads) {
  const std::string model = GetParam();
  Ref r = load_ref(model);
  PeftAdapter a = read_peft_adapter(fixture(model + "-lora"));
  auto m = build(model, "lora", &a);
  expect_logits(*m, r, model, "lora_logits");
  LossSum s = m->forward(batch(r), 1.f / 30.f);
  ASSERT_EQ(s.count, 30);
  EXPECT_NEAR(s.sum / s.count, r.j["lora_loss"].get<double>(), 1e-4 * r.j["lora_loss"].get<double>());
  m->backward();
  expect_grads_match_peft(*m, SafetensorsFile(fixture(model + "-lora-grads.safetensors")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Models, HfReference, ::testing::Values("tiny-llama", "tiny-gpt2"));

TEST(HfReference, LlamaFullFineTuneGrads) {
  Ref r = load_ref("tiny-llama");
  auto m = build("tiny-llama", "full", nullptr);
  m->forward(batch(r), 1.f / 30.f);
  m->backward();
  SafetensorsFile grads(fixture("tiny-llama-full-grads.safetensors"));
  ASSERT_EQ(grads.entries().size(), m->params().params().size());
  for (auto& p : m->params().params()) {
    Tensor want = grads.load_f32(p.name);
    EXPECT_LT(norm_rel_err(p.grad.to_vector(), want.to_vector()), 1e-4) << p.name;
  }
}

TEST(HfReference, Gpt2FullFineTuneGradNorms) {
  Ref r = load_ref("tiny-gpt2");
  auto m = build("tiny-gpt2", "full", nullptr);
  m->forward(batch(r), 1.f / 30.f);
  m->backward();
  auto& norms = r.j["full_grad_norms"];
  ASSERT_EQ(norms.size(), m->params().params().size());
  for (auto& p : m->params().params()) {
    auto g = p.grad.to_vector();
    double ss = 0;
    for (float v : g) ss += double(v) * v;
    double want = norms[p.name].get<double>();
    EXPECT_NEAR(std::sqrt(ss), want, 1e-4 * want + 1e-7) << p.name;
  }
}

TEST(HfReference, AdapterWithOtherRankAndTargets) {
  Ref r = load_ref("tiny-llama");
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora-qv"));
  EXPECT_EQ(a.lora.r, 2);
  auto m = build("tiny-llama", "lora", &a);
  double want = r.j["lora_qv_loss"].get<double>();
  EXPECT_NEAR(mean_loss(*m, r), want, 1e-4 * want);
}

TEST(HfReference, F16Weights) {
  Ref r = load_ref("tiny-llama");
  auto m = build("tiny-llama-f16", "lora", nullptr);
  double want = r.j["f16_loss"].get<double>();
  EXPECT_NEAR(mean_loss(*m, r), want, 1e-4 * want);
}
