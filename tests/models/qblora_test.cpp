// Q-BLoRA (models/adapters/qblora.h) against an independent PyTorch version
// (tests/fixtures/make_qblora_fixtures.py): loss and every adapter gradient
// within 1e-4 relative on both fixture architectures (lambda 4 on GPT-2, 2 on
// LLaMA), the exact merge, qtrain's own save read back, LoRA's parameter
// count, lambda = 1 being LoRA, and the divisibility error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/elementwise.h"
#include "models/adapters/qblora.h"
#include "models/merged_model.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

std::unique_ptr<Model> build(const LoadedModel& lm, const PeftAdapter& a, const std::string& method = "lora") {
  return build_with_adapter(lm, a, method);
}

double mean_loss(Model& m, const Ref& r, bool backward = false) { return ref_mean_loss(m, r, backward); }

class QBlora : public ::testing::TestWithParam<std::string> {};

TEST_P(QBlora, LossGradsAndMergeMatchTorch) {
  const std::string model = GetParam();
  const nlohmann::json want = fixture_json("qblora-ref.json")[model];
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-qblora"));
  ASSERT_EQ(a.type, "qblora");
  ASSERT_EQ(a.lora.blora_lambda, want["lambda"].get<int>());
  auto m = build(lm, a);
  expect_adapter_matches_reference(*m, r, want, fixture(model + "-qblora-grads.safetensors"));
}

TEST_P(QBlora, SaveReadsBack) {
  const std::string model = GetParam();
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-qblora"));
  auto m = build(lm, a);
  const std::string dir = ::testing::TempDir() + "/qblora_" + model;
  std::filesystem::remove_all(dir);
  save_peft_adapter(dir, *m, model);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "QBLORA");
  EXPECT_EQ(cfg["blora_lambda"], a.lora.blora_lambda);
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.f);
  PeftAdapter back = read_peft_adapter(dir);
  EXPECT_EQ(back.type, "qblora");
  EXPECT_EQ(back.lora.blora_lambda, a.lora.blora_lambda);
  EXPECT_EQ(back.modules, a.modules);
  auto m2 = build(lm, back);
  EXPECT_EQ(mean_loss(*m2, r), mean_loss(*m, r));
}

INSTANTIATE_TEST_SUITE_P(Models, QBlora, ::testing::Values("tiny-gpt2", "tiny-llama"), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

ModelOptions qblora_options(int lambda) {
  ModelOptions opt;
  opt.adapter_type = "qblora";
  opt.lora.r = 4;
  opt.lora.alpha = 8.f;
  opt.lora.blora_lambda = lambda;
  return opt;
}

TEST(QBloraShapes, SameTrainableCountAsLoraAndRankLambdaR) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions lora;
  lora.lora.r = 4;
  auto ml = Model::create(lm.config, *lm.weights, lora);
  for (int lambda : {1, 2, 4, 8}) {
    auto mq = Model::create(lm.config, *lm.weights, qblora_options(lambda));
    EXPECT_EQ(mq->trainable_params(), ml->trainable_params()) << lambda;
    for (Linear* lin : mq->linears()) {
      auto* q = dynamic_cast<QBloraAdapter*>(lin->adapter());
      ASSERT_NE(q, nullptr) << lin->name();
      EXPECT_EQ(q->A().shape, (Shape{4 * lambda, lin->in() / lambda})) << lin->name();
      EXPECT_EQ(q->B().shape, (Shape{lin->out() / lambda, 4 * lambda})) << lin->name();
    }
  }
}

TEST(QBloraShapes, LambdaOneIsLora) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter lora = read_peft_adapter(fixture("tiny-llama-lora"));
  auto ml = build(lm, lora);
  PeftAdapter as_q = read_peft_adapter(fixture("tiny-llama-lora"));
  as_q.type = "qblora";
  as_q.lora.blora_lambda = 1;
  auto mq = build(lm, as_q);
  EXPECT_NEAR(mean_loss(*mq, r, true), mean_loss(*ml, r, true), 1e-6);
}

TEST(QBloraShapes, FreshAdapterStartsAtTheBase) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions none;
  none.targets = {};
  auto base = Model::create(lm.config, *lm.weights, none);
  auto mq = Model::create(lm.config, *lm.weights, qblora_options(2));
  EXPECT_NEAR(mean_loss(*mq, r), mean_loss(*base, r), 1e-6);
}

TEST(QBloraShapes, IndivisibleLambdaIsAUserError) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));  // hidden 64, intermediate 160
  try {
    Model::create(lm.config, *lm.weights, qblora_options(3));
    FAIL() << "lambda 3 does not divide 64";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("--blora-lambda 3"), std::string::npos) << e.what();
  }
}

// The method: QLoRA's NF4 base with the qblora adapter by default; it trains
// (the adapter's gradients reach A once B moves) and its merge is exact.
TEST(QBloraMethod, Nf4BaseWithQBloraAdapter) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-qblora"));
  ModelOptions opt = adapter_options(a, "qblora");
  opt.adapter_type = "";  // the method's default
  auto m = Model::create(lm.config, *lm.weights, opt);
  ASSERT_EQ(m->adapter_type()->name, "qblora");
  apply_peft_adapter(*m, a);
  const double loss = mean_loss(*m, r, true);
  EXPECT_TRUE(std::isfinite(loss));
  for (auto& p : m->params().params()) EXPECT_GT(sum_squares(p.grad), 0.0) << p.name;
  auto merged = merge_adapters_into_base(*m, ModelOptions{.targets = {}});
  EXPECT_NEAR(mean_loss(*merged, r), loss, 1e-4 * loss);
}

}  // namespace
}  // namespace qtrain::testing
