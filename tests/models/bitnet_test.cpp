// BitNet b1.58 (models/bitlinear_weight.h, kernels/ternary.h) against the
// PyTorch reference of tests/fixtures/make_bitnet_fixtures.py: the quantizers,
// BitLinear's output and its straight-through gradients at lambda 0, 0.5 and 1
// with and without SubLN; the warmup schedule; and a tiny model that learns.
#include <gtest/gtest.h>

#include <set>

#include "kernels/ternary.h"
#include "models/bitlinear_weight.h"
#include "models/model.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"
#include "trainer/optimizer.h"

namespace qtrain::testing {
namespace {

SafetensorsFile& ref() {
  static SafetensorsFile f(fixture("bitnet/bitlinear.safetensors"));
  return f;
}

TEST(BitNet, QuantizersMatchTheReference) {
  Tensor w = ref().load_f32("w"), x = ref().load_f32("x");
  Tensor wq = Tensor::empty(w.shape(), DType::F32), xq = Tensor::empty(x.shape(), DType::F32);
  ternary_fake_quant(wq, w, 1.f);
  int8_act_fake_quant(xq, x, 1.f);
  EXPECT_LT(max_rel_err(wq.to_vector(), ref().load_f32("weight_quant").to_vector()), 1e-6);
  EXPECT_LT(max_rel_err(xq.to_vector(), ref().load_f32("act_quant").to_vector()), 1e-6);
  // three values only, +-gamma and 0
  const std::vector<float> qv = wq.to_vector();
  std::set<float> levels(qv.begin(), qv.end());
  EXPECT_EQ(levels.size(), 3u);
  // lambda 0 is the identity
  ternary_fake_quant(wq, w, 0.f);
  EXPECT_EQ(wq.to_vector(), w.to_vector());
}

TEST(BitNet, BitLinearForwardAndStraightThroughGradients) {
  Tensor x = ref().load_f32("x"), w = ref().load_f32("w"), dy = ref().load_f32("dy");
  for (float lam : {0.f, 0.5f, 1.f}) {
    for (bool subln : {false, true}) {
      const int64_t warmup = 100;
      BitLinearWeight bl(w.clone(), warmup, subln);
      bl.set_step(int64_t(lam * warmup));
      ASSERT_FLOAT_EQ(bl.lambda(), lam);
      char key[64];
      std::snprintf(key, sizeof key, "lam%.1f_subln%d", lam, int(subln));
      Tensor y = Tensor::empty({6, 24}, DType::F32), dx = Tensor::empty({6, 40}, DType::F32);
      Tensor dw = Tensor::zeros({24, 40}, DType::F32);
      bl.forward(y, x);
      bl.backward_input_from(dx, dy, x, 0.f);
      bl.accumulate_weight_grad(dw, dy, x);
      const std::string k = key;
      EXPECT_LT(norm_rel_err(y.to_vector(), ref().load_f32(k + ".y").to_vector()), 1e-5) << k;
      EXPECT_LT(norm_rel_err(dx.to_vector(), ref().load_f32(k + ".dx").to_vector()), 1e-5) << k;
      EXPECT_LT(norm_rel_err(dw.to_vector(), ref().load_f32(k + ".dw").to_vector()), 1e-5) << k;
    }
  }
}

TEST(BitNet, WarmupSchedule) {
  BitLinearWeight bl(Tensor::zeros({2, 2}, DType::F32), 40, true);
  EXPECT_FLOAT_EQ(bl.lambda(), 1.f);  // never told a step: fully quantized (eval of a trained model)
  bl.set_step(0);
  EXPECT_FLOAT_EQ(bl.lambda(), 0.f);
  bl.set_step(10);
  EXPECT_FLOAT_EQ(bl.lambda(), 0.25f);
  bl.set_step(40);
  EXPECT_FLOAT_EQ(bl.lambda(), 1.f);
  bl.set_step(1000);
  EXPECT_FLOAT_EQ(bl.lambda(), 1.f);
  BitLinearWeight now(Tensor::zeros({2, 2}, DType::F32), 0, true);
  now.set_step(0);
  EXPECT_FLOAT_EQ(now.lambda(), 1.f);
}

double step_loss(Model& m, const Ref& r, AdamW* opt, int64_t step) {
  m.set_step(step);
  m.params().zero_grads();
  LossSum s = m.forward(r.batch(), float(1.0 / (r.B * (r.T - 1))));
  m.backward();
  if (opt) opt->step(m.params(), 3e-3f, 1.f);
  return s.sum / double(s.count);
}

// At lambda 0 the model is the pretrained one; through warmup it keeps learning
// and ends fully quantized with a loss far below where it started.
TEST(BitNet, TinyModelLearnsThroughWarmup) {
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    ModelOptions o;
    o.method = "bitnet";
    o.bitnet_warmup = 20;
    auto m = Model::create(lm.config, *lm.weights, o);
    ModelOptions base_o;
    base_o.targets = {};
    auto base = Model::create(lm.config, *lm.weights, base_o);
    LossSum b = base->forward(r.batch(), 0.f);
    m->set_step(0);
    LossSum z = m->forward(r.batch(), 0.f);
    EXPECT_NEAR(z.sum / z.count, b.sum / b.count, 1e-5 * b.sum / b.count) << name;
    AdamW opt(m->params(), {0.9f, 0.999f, 1e-8f, 0.f});
    const double first = step_loss(*m, r, &opt, 0);
    double last = 0;
    for (int64_t s = 1; s < 50; ++s) last = step_loss(*m, r, &opt, s);
    EXPECT_LT(last, 0.5 * first) << name << ": " << first << " -> " << last;
  }
}

}  // namespace
}  // namespace qtrain::testing
