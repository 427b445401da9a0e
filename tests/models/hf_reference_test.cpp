// The CPU reference backend against HF transformers + peft (tests/fixtures, made by
// make_model_fixtures.py): logits, loss, full fine-tune gradients and LoRA gradients
// of a tiny GPT-2 (BF16 weights, Conv1D, tied) and a tiny LLaMA (GQA, untied, F32/F16),
// within 1e-4 relative (issue 3).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;
using json = nlohmann::json;

namespace {

constexpr double kTol = 1e-4;

// The fixture batch with HF's shifted labels: position t predicts token t+1.
struct FixtureBatch {
  json ref;
  int B = 0, T = 0;
  std::vector<int32_t> inputs, targets;
  TokenBatch batch() const { return {B, T, inputs.data(), targets.data()}; }
};

FixtureBatch load_batch(const std::string& model) {
  FixtureBatch f;
  std::ifstream in(fixture(model + "-ref.json"));
  EXPECT_TRUE(in) << "missing " << fixture(model + "-ref.json");
  f.ref = json::parse(in);
  auto ids = f.ref["input_ids"];
  f.B = int(ids.size());
  f.T = int(ids[0].size());
  for (auto& row : ids)
    for (size_t t = 0; t < row.size(); ++t) {
      f.inputs.push_back(row[t].get<int32_t>());
      f.targets.push_back(t + 1 < row.size() ? row[t + 1].get<int32_t>() : -100);
    }
  return f;
}

std::vector<float> values(const Tensor& t) {
  Tensor h = t.to(Device::CPU, DType::F32);
  return std::vector<float>(h.f32(), h.f32() + h.numel());
}

struct Built {
  LoadedModel loaded;
  std::unique_ptr<Model> model;
};

// `adapter` empty: full fine-tune (every tensor trainable). Otherwise a LoRA model
// shaped by the peft adapter directory, with its tensors loaded.
Built build(const std::string& model_dir, const std::string& adapter = "") {
  Built b;
  b.loaded = load_hf_model_dir(fixture(model_dir));
  ModelOptions opt;
  if (adapter.empty()) {
    opt.method = "full";
    b.model = Model::create(b.loaded.config, *b.loaded.weights, opt);
    return b;
  }
  PeftAdapter a = read_peft_adapter(fixture(adapter));
  opt.method = "lora";
  opt.lora = a.lora;
  opt.targets = a.modules;
  b.model = Model::create(b.loaded.config, *b.loaded.weights, opt);
  apply_peft_adapter(*b.model, a);
  return b;
}

// Mean loss over the predicted tokens, with gradients of that mean in params().
double loss_and_grads(Model& m, const FixtureBatch& f) {
  m.params().zero_grads();
  int64_t count = 0;
  for (int32_t t : f.targets) count += t != -100;
  LossSum s = m.forward(f.batch(), 1.f / float(count));
  m.backward();
  EXPECT_EQ(s.count, count);
  return s.sum / double(s.count);
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

// logits [B*T, V] against the stored [B, T, cols] slice (+ full-vocab logsumexp if stored).
void expect_logits(Model& m, const FixtureBatch& f, const SafetensorsFile& ref, const std::string& key) {
  std::vector<float> got = values(m.logits(f.batch()));
  const int64_t V = m.config().vocab_size, cols = f.ref["logits_columns"].get<int64_t>();
  std::vector<float> want = values(ref.load_f32(key)), sliced;
  for (int64_t r = 0; r < int64_t(f.B) * f.T; ++r)
    sliced.insert(sliced.end(), got.begin() + r * V, got.begin() + r * V + cols);
  ASSERT_EQ(sliced.size(), want.size()) << key;
  EXPECT_LT(norm_rel_err(sliced, want), kTol) << key;
  float scale = 0;
  for (float w : want) scale = std::max(scale, std::abs(w));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::abs(sliced[i] - want[i])));
  EXPECT_LT(worst, kTol * scale) << key << ": max abs error";
  if (!ref.find(key + "_lse")) return;
  std::vector<float> lse_want = values(ref.load_f32(key + "_lse")), lse;
  for (int64_t r = 0; r < int64_t(f.B) * f.T; ++r) {
    double mx = *std::max_element(got.begin() + r * V, got.begin() + (r + 1) * V), s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(got[r * V + v]) - mx);
    lse.push_back(float(mx + std::log(s)));
  }
  EXPECT_LT(max_rel_err(lse, lse_want), kTol) << key << "_lse (the columns past the stored slice)";
}

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

class HfReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReference, BaseLogitsLossAndFullGradients) {
  const std::string name = GetParam();
  FixtureBatch f = load_batch(name);
  Built b = build(name);
  SafetensorsFile ref(fixture(name + "-ref.safetensors"));
  double loss = loss_and_grads(*b.model, f);
  EXPECT_LT(rel(loss, f.ref["loss"].get<double>()), kTol) << "loss " << loss;
  auto& want_norms = f.ref["full_grad_norms"];
  size_t checked = 0;
  for (auto& p : b.model->params().params()) {
    ASSERT_TRUE(want_norms.contains(p.name)) << "HF has no parameter " << p.name;
    EXPECT_LT(rel(l2(values(p.grad)), want_norms[p.name].get<double>()), kTol) << p.name << " grad norm";
    ++checked;
  }
  EXPECT_EQ(checked, want_norms.size()) << "every HF parameter is trainable in a full fine-tune";
  expect_logits(*b.model, f, ref, "logits");
}

TEST_P(HfReference, LoraLogitsLossAndGradients) {
  const std::string name = GetParam();
  FixtureBatch f = load_batch(name);
  Built b = build(name, f.ref["lora"]["dir"].get<std::string>());
  SafetensorsFile ref(fixture(name + "-ref.safetensors"));
  SafetensorsFile grads(fixture(name + "-lora-grads.safetensors"));
  double loss = loss_and_grads(*b.model, f);
  EXPECT_LT(rel(loss, f.ref["lora_loss"].get<double>()), kTol) << "LoRA loss " << loss;
  ASSERT_EQ(b.model->params().params().size(), grads.entries().size()) << "one trainable tensor per LoRA A/B";
  for (auto& p : b.model->params().params()) {
    const std::string key = "base_model.model." + p.name;
    ASSERT_TRUE(grads.find(key)) << "peft has no tensor " << key;
    EXPECT_LT(norm_rel_err(values(p.grad), values(grads.load_f32(key))), kTol) << key;
  }
  expect_logits(*b.model, f, ref, "lora_logits");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfReference, ::testing::Values("tiny-gpt2", "tiny-llama"));

TEST(HfReference, LlamaFullGradientTensors) {
  FixtureBatch f = load_batch("tiny-llama");
  Built b = build("tiny-llama");
  SafetensorsFile want(fixture("tiny-llama-full-grads.safetensors"));
  loss_and_grads(*b.model, f);
  for (auto& p : b.model->params().params()) {
    ASSERT_TRUE(want.find(p.name)) << p.name;
    EXPECT_LT(norm_rel_err(values(p.grad), values(want.load_f32(p.name))), kTol) << p.name;
  }
}

// F16 weights and the transformers-5 config layout (rope_parameters).
TEST(HfReference, LlamaF16Weights) {
  FixtureBatch f = load_batch("tiny-llama");
  Built b = build("tiny-llama-f16");
  SafetensorsFile ref(fixture("tiny-llama-ref.safetensors"));
  EXPECT_LT(rel(loss_and_grads(*b.model, f), f.ref["f16_loss"].get<double>()), kTol);
  expect_logits(*b.model, f, ref, "f16_logits");
}

// An adapter with other r/alpha and only q_proj, v_proj.
TEST(HfReference, LlamaQvAdapter) {
  FixtureBatch f = load_batch("tiny-llama");
  Built b = build("tiny-llama", "tiny-llama-lora-qv");
  EXPECT_EQ(b.model->params().params().size(), 8u);  // 2 layers x {q,v} x {A,B}
  EXPECT_LT(rel(loss_and_grads(*b.model, f), f.ref["lora_qv_loss"].get<double>()), kTol);
}

}  // namespace
