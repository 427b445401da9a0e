// The activation plan (ModelOptions::recompute_layers / pointwise_layers):
// whatever each layer keeps, recomputes whole, or keeps only its GEMM outputs
// of, the loss and every gradient are those of keeping everything; and the
// bytes each layer holds after the forward are what the plan says, column for
// column as layer_columns() declares them to the memory estimate.
#include <gtest/gtest.h>

#include <numeric>

#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

struct Plan {
  int recompute, pointwise;
  bool checkpoint = false;
};

// One training step under `plan`: the loss and gradients, and what each layer
// held after the forward: its activations, and its adapters' saved state with
// what their declarations say it is (Adapter::saved_columns, F32 on the CPU).
struct PlannedStep {
  LossAndGrads lg;
  std::vector<int64_t> held, adapters_held, adapters_declared;
};

PlannedStep planned_step(const std::string& model, const std::string& method, float dropout, const Plan& plan) {
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  ModelOptions opt = recompute_test_options(method, Device::CPU);
  opt.lora.dropout = dropout;
  opt.recompute_layers = plan.recompute;
  opt.pointwise_layers = plan.pointwise;
  opt.grad_checkpoint = plan.checkpoint;
  auto m = Model::create(lm.config, *lm.weights, opt);
  randomize_trainable(*m);
  m->params().zero_grads();
  PlannedStep out;
  const LossSum s = m->forward(r.batch(), float(1.0 / double(r.B * (r.T - 1))));
  out.held = m->saved_activation_bytes();
  out.adapters_held.assign(out.held.size(), 0);
  out.adapters_declared.assign(out.held.size(), 0);
  const int64_t N = int64_t(r.B) * r.T;
  for (const Linear* lin : m->linears())
    if (const Adapter* a = lin->adapter()) {
      const Adapter::SavedColumns c = a->saved_columns();
      out.adapters_held[size_t(lin->layer())] += int64_t(a->saved_bytes());
      out.adapters_declared[size_t(lin->layer())] +=
          N * (4 * std::accumulate(c.act.begin(), c.act.end(), int64_t(0)) + c.bytes);
    }
  m->backward();
  out.lg.loss = s.sum / double(s.count);
  for (auto& p : m->params().params()) {
    auto g = p.grad.to_vector();
    out.lg.grads.insert(out.lg.grads.end(), g.begin(), g.end());
  }
  return out;
}

// With LoRA dropout a layer's adapters keep their own dropped inputs, and
// their backward never reads the recomputed norm outputs: without it, it does.
class ActivationPlan : public ::testing::TestWithParam<std::tuple<std::string, std::string, float>> {};

TEST_P(ActivationPlan, EveryPlanGivesTheSameGradientsAndHoldsWhatItSays) {
  const auto& [model, method, dropout] = GetParam();
  if (method == "qablora" && dropout > 0) GTEST_SKIP() << "QA-BLoRA has no dropout";
  const ModelConfig cfg = load_hf_model_dir(fixture(model)).config;
  ASSERT_EQ(cfg.n_layer, 2);  // the plans below cover each pair of layer kinds
  ModelOptions opt = recompute_test_options(method, Device::CPU);
  opt.lora.dropout = dropout;
  const ModelFootprint f = Model::footprint(cfg, opt);
  const Ref r = load_ref(model);
  const int64_t N = int64_t(r.B) * r.T;
  auto cols = [](const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t(0)); };
  // F32 on the CPU: 4 bytes a column
  const int64_t all = N * 4 * (cols(f.kept_cols) + cols(f.kept_f32_cols)), gemm = all - N * 4 * cols(f.pointwise_cols);
  ASSERT_GT(cols(f.pointwise_cols), 0);

  const PlannedStep kept = planned_step(model, method, dropout, {0, 0});
  ASSERT_GT(kept.lg.grads.size(), 0u);
  double norm = 0;
  for (float g : kept.lg.grads) norm += double(g) * g;
  EXPECT_GT(norm, 0.0);  // something is compared
  EXPECT_EQ(kept.held, (std::vector<int64_t>{all, all}));
  EXPECT_EQ(kept.adapters_held, kept.adapters_declared);
  if (method != "full") EXPECT_GT(kept.adapters_held[0], 0);

  const struct {
    Plan plan;
    std::vector<int64_t> held;
  } cases[] = {
      {{1, 0}, {0, all}}, {{0, 1}, {gemm, all}}, {{1, 1}, {0, gemm}},
      {{2, 0}, {0, 0}},   {{0, 2}, {gemm, gemm}}, {{0, 0, true}, {0, 0}},
  };
  for (const auto& c : cases) {
    const std::string what = "recompute " + std::to_string(c.plan.recompute) + ", pointwise " +
                              std::to_string(c.plan.pointwise) + (c.plan.checkpoint ? ", --grad-checkpoint" : "");
    const PlannedStep got = planned_step(model, method, dropout, c.plan);
    EXPECT_EQ(got.held, c.held) << what;
    for (size_t l = 0; l < c.held.size(); ++l)  // a recomputed layer's adapters save theirs again before its backward
      EXPECT_EQ(got.adapters_held[l], c.held[l] ? kept.adapters_held[l] : 0) << what << ", layer " << l;
    EXPECT_EQ(got.lg.loss, kept.lg.loss) << what;
    ASSERT_EQ(got.lg.grads.size(), kept.lg.grads.size()) << what;
    EXPECT_LT(norm_rel_err(got.lg.grads, kept.lg.grads), 1e-6) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ActivationPlan,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-gpt2"),
                                            ::testing::Values("lora", "full", "dora", "ia3", "qblora", "qablora"),
                                            ::testing::Values(0.f, 0.1f)),
                         [](const auto& info) {
                           return ModelMethodName()(info) + (std::get<2>(info.param) > 0 ? "_dropout" : "");
                         });

}  // namespace
}  // namespace qtrain::testing
