// --rslora on every base precision. peft's LoRA layer adds
// scaling * B(A(x)) to whatever the base layer (nn.Linear, bnb Linear4bit,
// Linear8bitLt) returns, with scaling = alpha / sqrt(r) under use_rslora; so
// on each base qtrain's Linear minus its base product must be exactly that,
// for the same A and B. On the dense and NF4 bases the whole model is also
// checked against peft's numbers: rsLoRA with alpha 4, r 4 scales by 2, as
// the committed alpha 8 / r 4 references do (alpha / r would scale by 1).
// Per-module r under rslora is checked against peft's use_rslora in
// lora_pattern_test.cpp.
#include <cmath>
#include <tuple>

#include "kernels/matmul.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

std::unique_ptr<Model> rslora_model(const LoadedModel& lm, const PeftAdapter& a, const std::string& method, float alpha) {
  ModelOptions opt;
  opt.method = method;
  opt.lora = a.lora;
  opt.lora.alpha = alpha;
  opt.lora.rslora = true;
  opt.targets = a.modules;
  auto m = Model::create(lm.config, *lm.weights, opt);
  apply_peft_adapter(*m, a);
  return m;
}

}  // namespace

class RsloraOnBase : public ::testing::TestWithParam<std::string> {};

TEST_P(RsloraOnBase, AdapterAddsAlphaOverSqrtRTimesBAx) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora"));  // r 4
  ASSERT_EQ(a.lora.r, 4);
  const float alpha = 6.f, s = alpha / std::sqrt(4.f);  // 3; alpha / r would be 1.5
  auto m = rslora_model(lm, a, GetParam(), alpha);
  int checked = 0;
  uint64_t seed = 90;
  for (Linear* lin : m->linears()) {
    if (!lin->adapter()) continue;
    const int64_t n = 5;
    Tensor x = randn({n, lin->in()}, seed++);
    Tensor y = Tensor::empty({n, lin->out()}, DType::F32), base = Tensor::empty({n, lin->out()}, DType::F32);
    lin->forward(y, x, false, 0);
    lin->base().forward(base, x);
    std::vector<float> delta = y.to_vector(), b = base.to_vector();
    for (size_t i = 0; i < delta.size(); ++i) delta[i] -= b[i];
    // s * (x A^T) B^T from the adapter's own tensors, as peft computes it
    auto t = lin->adapter()->tensors();
    Tensor h = Tensor::empty({n, 4}, DType::F32), want = Tensor::empty({n, lin->out()}, DType::F32);
    gemm(h, x, t.at(0).second, false, true);
    gemm(want, h, t.at(1).second, false, true, s, 0.f);
    EXPECT_LT(norm_rel_err(delta, want.to_vector()), 1e-5) << GetParam() << " " << lin->name();
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

INSTANTIATE_TEST_SUITE_P(Bases, RsloraOnBase, ::testing::Values("lora", "qlora", "nf4-lora", "qlora-fp4", "int8-lora"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(RsloraOnBase, WholeModelMatchesPeftOnDenseAndNf4Bases) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora"));
  const std::pair<const char*, double> cases[] = {
      {"lora", r.j["lora_loss"].get<double>()},
      {"qlora", fixture_json("quant/tiny-llama-qlora-ref.json")["qlora_loss"].get<double>()},
  };
  for (auto& [method, want] : cases) {
    auto m = rslora_model(lm, a, method, 4.f);
    LossSum l = m->forward(r.batch(), 0.f);
    EXPECT_NEAR(l.sum / double(l.count), want, 1e-4 * want) << method;
  }
}
