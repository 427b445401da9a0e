// DoRA and IA3 against peft (fixtures: tests/fixtures/make_peft_family_fixtures.py):
// the loss and every adapter gradient within 1e-4 relative on both fixture
// architectures, peft's merge, qtrain's own export read back, DoRA on an NF4
// base using the dequantized weight, and DoRA's dropout form against finite
// differences.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/elementwise.h"
#include "models/merged_model.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

ModelOptions options_for(const PeftAdapter& a, const std::string& method = "lora") { return adapter_options(a, method); }

std::unique_ptr<Model> build(const LoadedModel& lm, const PeftAdapter& a, const std::string& method = "lora") {
  return build_with_adapter(lm, a, method);
}

double mean_loss(Model& m, const Ref& r, bool backward = false) { return ref_mean_loss(m, r, backward); }

using Case = std::tuple<std::string, std::string>;  // model, adapter type
class PeftFamily : public ::testing::TestWithParam<Case> {};

TEST_P(PeftFamily, LossAndGradsMatchPeft) {
  const auto& [model, type] = GetParam();
  const nlohmann::json want = fixture_json("peft-family-ref.json")[model][type];
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-" + type));
  ASSERT_EQ(a.type, type);
  auto m = build(lm, a);
  // peft's merge_and_unload gives the same loss; so does qtrain's merge.
  expect_adapter_matches_reference(*m, r, want, fixture(model + "-" + type + "-grads.safetensors"));
}

TEST_P(PeftFamily, ExportReadsBackWithPeftsFields) {
  const auto& [model, type] = GetParam();
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-" + type));
  auto m = build(lm, a);
  const std::string dir = ::testing::TempDir() + "/peft_family_" + model + "_" + type;
  std::filesystem::remove_all(dir);
  save_peft_adapter(dir, *m, model);
  nlohmann::json mine = nlohmann::json::parse(std::ifstream(dir + "/adapter_config.json"));
  nlohmann::json theirs = fixture_json(model + "-" + type + "/adapter_config.json");
  for (const char* k : {"peft_type", "target_modules", "feedforward_modules", "use_dora", "r", "lora_alpha"})
    if (theirs.contains(k)) EXPECT_EQ(mine[k], theirs[k]) << k;
  PeftAdapter back = read_peft_adapter(dir);
  EXPECT_EQ(back.type, type);
  EXPECT_EQ(back.modules, a.modules);
  auto m2 = build(lm, back);
  EXPECT_EQ(mean_loss(*m2, r), mean_loss(*m, r));
}

// Gradient checkpointing: the first pass keeps nothing in the adapters (DoRA's
// unscaled output is N x out per Linear), and the gradients are unchanged.
TEST_P(PeftFamily, CheckpointedForwardKeepsNoAdapterState) {
  const auto& [model, type] = GetParam();
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-" + type));
  auto held = [](Model& m) {
    size_t n = 0;
    for (const Linear* lin : m.linears()) n += lin->adapter() ? lin->adapter()->saved_bytes() : 0;
    return n;
  };
  LossAndGrads want, got;
  for (bool ckpt : {false, true}) {
    ModelOptions o = adapter_options(a);
    o.grad_checkpoint = ckpt;
    auto m = Model::create(lm.config, *lm.weights, o);
    apply_peft_adapter(*m, a);
    m->params().zero_grads();
    m->forward(r.batch(), float(1.0 / double(r.B * (r.T - 1))));
    if (ckpt)
      EXPECT_EQ(held(*m), 0u);
    else
      EXPECT_GT(held(*m), 0u);
    m->backward();
    (ckpt ? got : want) = train_step_grads(*m, r);
  }
  EXPECT_EQ(got.loss, want.loss);
  ASSERT_EQ(got.grads.size(), want.grads.size());
  EXPECT_LT(norm_rel_err(got.grads, want.grads), 1e-6);
}

// DoRA's column scale is computed once per step and reused by a gradient-
// checkpoint recompute: after an update of the factors the next training
// forward must see the new values, as a model built from them does.
TEST_P(PeftFamily, TheStepAfterAnUpdateSeesTheNewFactors) {
  const auto& [model, type] = GetParam();
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-" + type));
  for (bool ckpt : {false, true}) {
    auto make = [&] {
      ModelOptions o = adapter_options(a);
      o.grad_checkpoint = ckpt;
      auto m = Model::create(lm.config, *lm.weights, o);
      apply_peft_adapter(*m, a);
      return m;
    };
    auto m = make();
    const double before = mean_loss(*m, r, true);
    axpy(m->params().values(), -0.5f, m->params().grads());  // one SGD step
    const double after = mean_loss(*m, r, true);
    EXPECT_NE(after, before) << "ckpt " << ckpt;
    auto fresh = make();
    fresh->params().values().copy_from(m->params().values());
    EXPECT_EQ(mean_loss(*fresh, r, true), after) << "ckpt " << ckpt;
  }
}

INSTANTIATE_TEST_SUITE_P(Adapters, PeftFamily,
                         ::testing::Combine(::testing::Values("tiny-gpt2", "tiny-llama"), ::testing::Values("dora", "ia3")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(PeftFamily, FreshAdaptersStartAtTheBaseModel) {
  for (const char* type : {"dora", "ia3"}) {
    Ref r = load_ref("tiny-llama");
    LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
    ModelOptions opt;
    opt.adapter_type = type;
    auto m = Model::create(lm.config, *lm.weights, opt);
    ModelOptions none;
    none.targets = {};
    auto base = Model::create(lm.config, *lm.weights, none);
    EXPECT_NEAR(mean_loss(*m, r), mean_loss(*base, r), 1e-6) << type;
    EXPECT_GT(m->trainable_params(), 0) << type;
  }
}

// On a quantized base DoRA's norm is that of the dequantized weight (peft's
// dequantize_module_weight): NF4 + DoRA equals dense DoRA on the NF4-rounded weights.
TEST(PeftFamily, DoraOnNf4UsesTheDequantizedWeight) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-dora"));
  auto q = build(lm, a, "nf4-lora");
  StateDictSource rounded(q->hf_state_dict(false));
  auto d = Model::create(lm.config, rounded, options_for(a));
  apply_peft_adapter(*d, a);
  const double lq = mean_loss(*q, r, true);
  std::vector<std::vector<float>> gq;
  for (auto& p : q->params().params()) gq.push_back(p.grad.to_vector());
  EXPECT_NEAR(mean_loss(*d, r, true), lq, 1e-5 * lq);
  for (size_t i = 0; i < gq.size(); ++i)
    EXPECT_LT(norm_rel_err(d->params().params()[i].grad.to_vector(), gq[i]), 1e-4) << d->params().params()[i].name;
  // and it is not the dense model's DoRA
  auto dense = build(lm, a);
  EXPECT_GT(std::abs(mean_loss(*dense, r) - lq), 1e-4 * lq);
}

// With dropout peft's DoRA takes another form (y = x W^T + b + (m/n - 1) drop(x) W^T
// + m/n s drop(x) A^T B^T, one more base product). (1) At a dropout so small that
// every element is kept it must give the dropout-free form's loss and gradients;
// (2) at p = 0.3 the magnitude's gradient matches finite differences (A and B's
// do not by design: the norm is detached, as in peft).
TEST(PeftFamily, DoraDropoutFormAgreesWithTheFusedForm) {
  Ref r = load_ref("tiny-gpt2");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-gpt2"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-gpt2-dora"));
  auto with_dropout = [&](float p) {
    ModelOptions opt = options_for(a);
    opt.lora.dropout = p;
    auto m = Model::create(lm.config, *lm.weights, opt);
    apply_peft_adapter(*m, a);
    return m;
  };
  auto loss_at = [&](Model& m, bool backward) {
    m.set_rng_counter(5);  // the same dropout masks every time
    m.params().zero_grads();
    LossSum s = m.forward(r.batch(), backward ? float(1.0 / double(r.B * (r.T - 1))) : 1e-30f);
    if (backward) m.backward();
    return s.sum / double(s.count);
  };
  auto fused = with_dropout(0.f), tiny = with_dropout(1e-9f);
  const double lf = loss_at(*fused, true), lt = loss_at(*tiny, true);
  EXPECT_NEAR(lt, lf, 1e-6 * lf);
  for (size_t i = 0; i < fused->params().params().size(); ++i)
    EXPECT_LT(norm_rel_err(tiny->params().params()[i].grad.to_vector(), fused->params().params()[i].grad.to_vector()),
              1e-5)
        << fused->params().params()[i].name;

  auto m = with_dropout(0.3f);
  EXPECT_GT(std::abs(loss_at(*m, true) - lf), 1e-3 * lf);  // dropout does act
  int checked = 0;
  for (auto& p : m->params().params()) {
    if (p.name.find("lora_magnitude_vector") == std::string::npos) continue;
    const std::vector<float> g = p.grad.to_vector();
    const int64_t i = p.value.numel() / 3;
    const float v0 = p.value.f32()[i], eps = 1e-2f;
    p.value.f32()[i] = v0 + eps;
    const double up = loss_at(*m, false);
    p.value.f32()[i] = v0 - eps;
    const double down = loss_at(*m, false);
    p.value.f32()[i] = v0;
    const double fd = (up - down) / (2 * eps);
    EXPECT_NEAR(g[size_t(i)], fd, 2e-3 * std::max(1.0, std::abs(fd)) + 2e-5) << p.name << "[" << i << "]";
    // loss_at(false) left stale gradients of nothing; restore this one's for the next entry
    m->params().zero_grads();
    loss_at(*m, true);
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

}  // namespace
}  // namespace qtrain::testing
