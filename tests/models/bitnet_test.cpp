// BitNet b1.58 (models/bitlinear_weight.h, kernels/ternary.h) against the
// PyTorch reference of tests/fixtures/make_bitnet_fixtures.py: the quantizers,
// BitLinear's output and its straight-through gradients at lambda 0, 0.5 and 1
// with and without SubLN; the warmup schedule; and a tiny model that learns.
#include <gtest/gtest.h>

#include <set>

#include "kernels/norm.h"
#include "kernels/quant/int8.h"
#include "kernels/ternary.h"
#include "models/bitlinear_weight.h"
#include "models/merged_model.h"
#include "models/ternary_export.h"
#include "models/ternary_weight.h"
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
  const double loss = ref_mean_loss(m, r, /*backward=*/true);
  if (opt) opt->step(m.params(), 3e-3f, 1.f);
  return loss;
}

std::unique_ptr<Model> bitnet_model(const LoadedModel& lm, int64_t warmup) {
  ModelOptions o;
  o.method = "bitnet";
  o.bitnet_warmup = warmup;
  return Model::create(lm.config, *lm.weights, o);
}

// At lambda 0 the model is the pretrained one; through warmup it keeps learning
// and ends fully quantized with a loss far below where it started.
TEST(BitNet, TinyModelLearnsThroughWarmup) {
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    auto m = bitnet_model(lm, 20);
    auto base = Model::create(lm.config, *lm.weights, ModelOptions{.targets = {}});
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

// The 2-bit form holds exactly the weights the fake quantizer trains through,
// rows not a multiple of 16 included (padding reads as 0).
TEST(BitNet, TernaryPackRoundTrip) {
  for (int64_t cols : {40, 64, 17}) {
    Tensor w = randn({7, cols}, 3, 0.05f);
    w.f32()[5] = 0.f;
    Tensor fq = Tensor::empty(w.shape(), DType::F32);
    ternary_fake_quant(fq, w, 1.f);
    quant::PackedTernary p = quant::quantize_ternary(w.f32(), 7, cols);
    EXPECT_EQ(int64_t(p.codes.size()), 7 * ((cols + 15) / 16) * 4);
    TernaryTensor t = TernaryTensor::from_packed(p);
    Tensor back = Tensor::empty(w.shape(), DType::F32), levels = Tensor::empty(w.shape(), DType::I8);
    unpack_ternary(back, t);
    unpack_ternary(levels, t);
    EXPECT_EQ(back.to_vector(), fq.to_vector()) << cols;
    std::set<int> seen;
    for (int64_t i = 0; i < w.numel(); ++i) {
      const int l = static_cast<const int8_t*>(levels.raw())[i];
      seen.insert(l);
      EXPECT_EQ(float(l) * p.scale, back.f32()[i]);
    }
    EXPECT_EQ(seen, (std::set<int>{-1, 0, 1}));
    for (int64_t r = 0; r < 7; ++r)  // the padding of a short row is code 1 (weight 0)
      for (int64_t c = cols; c < (cols + 15) / 16 * 16; ++c) EXPECT_EQ(quant::ternary_at(p.codes.data() + r * p.codes.size() / 7, c), 0);
  }
}

// W2A8: the integer product equals LLM.int8 at threshold 0 on the levels, bit
// for bit, and BitLinear at lambda 1 up to float rounding.
TEST(BitNet, W2A8ProductMatchesBitLinear) {
  Tensor x = ref().load_f32("x"), w = ref().load_f32("w");
  TernaryTensor t = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), 24, 40));
  Tensor y = Tensor::empty({6, 24}, DType::F32), yi = Tensor::empty({6, 24}, DType::F32), yb = Tensor::empty({6, 24}, DType::F32);
  ternary_matmul(y, x, t);
  Tensor levels = Tensor::empty({24, 40}, DType::I8);
  unpack_ternary(levels, t);
  quant::int8_matmul_decomposed(static_cast<const int8_t*>(levels.raw()), t.wabs.f32(), 24, 40, x.f32(), 6, yi.f32(), 0.f);
  EXPECT_EQ(y.to_vector(), yi.to_vector());
  BitLinearWeight bl(w.clone(), 0, false);
  bl.forward(yb, x);
  EXPECT_LT(norm_rel_err(y.to_vector(), yb.to_vector()), 1e-6);
  EXPECT_LT(norm_rel_err(y.to_vector(), ref().load_f32("lam1.0_subln0.y").to_vector()), 1e-5);
}

std::vector<int> codes_of(const Q8Rows& a) {
  const auto* q = static_cast<const int8_t*>(a.q.raw());
  return std::vector<int>(q, q + a.q.numel());
}

// The W2A8 product's activation rows (quantize_act_q8): by hand, then with the
// SubLN equal to the composition it replaces (RMSNorm with unit weights, eps
// 1e-5, then the quantization), and the two-step product equal to ternary_matmul.
TEST(BitNet, Q8RowsByHandAndAsTheComposition) {
  const Tensor x = Tensor::from_elements(std::vector<float>{1.f, -2.f, 0.5f, 4.f, 0.f, 0.f, 0.f, 0.f}, {2, 4}, DType::F32);
  const Q8Rows a = Q8Rows::empty(2, 4, Device::CPU);
  quantize_act_q8(a, x, false);
  // 127 / 4 = 31.75: 31.75 -> 32, -63.5 -> -64 (half to even), 15.875 -> 16, 127; a zero row is zeros
  EXPECT_EQ(codes_of(a), (std::vector<int>{32, -64, 16, 127, 0, 0, 0, 0}));
  EXPECT_EQ(a.absmax.to_vector(), (std::vector<float>{4.f, 0.f}));
  EXPECT_EQ(static_cast<const int32_t*>(a.sum.raw())[0], 111);
  EXPECT_EQ(static_cast<const int32_t*>(a.sum.raw())[1], 0);

  const Tensor xr = ref().load_f32("x"), w = ref().load_f32("w");
  Tensor xn = Tensor::empty(xr.shape(), DType::F32);
  rmsnorm_forward(xn, Tensor(), xr, Tensor::from_elements(std::vector<float>(40, 1.f), {40}, DType::F32), kSubLnEps);
  const Q8Rows fused = Q8Rows::empty(6, 40, Device::CPU), comp = Q8Rows::empty(6, 40, Device::CPU);
  quantize_act_q8(fused, xr, true);
  quantize_act_q8(comp, xn, false);
  EXPECT_EQ(codes_of(fused), codes_of(comp));
  EXPECT_EQ(fused.absmax.to_vector(), comp.absmax.to_vector());
  EXPECT_EQ(fused.sum.to(Device::CPU, DType::F32).to_vector(), comp.sum.to(Device::CPU, DType::F32).to_vector());
  int nonzero = 0;
  for (int c : codes_of(fused)) nonzero += c != 0;
  EXPECT_GT(nonzero, 200);  // the fixture's x is not degenerate

  const TernaryTensor t = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), 24, 40));
  Tensor y1 = Tensor::empty({6, 24}, DType::F32), y2 = y1.clone();
  ternary_matmul(y1, xn, t);
  ternary_matmul_q8(y2, fused, t);
  EXPECT_EQ(y1.to_vector(), y2.to_vector());
}

// The frozen ternary base computes what the trained BitLinear does at lambda 1,
// forward and input gradient, with and without SubLN.
TEST(BitNet, TernaryWeightIsTheTrainedBitLinear) {
  Tensor x = ref().load_f32("x"), w = ref().load_f32("w"), dy = ref().load_f32("dy");
  for (bool subln : {false, true}) {
    BitLinearWeight bl(w.clone(), 0, subln);
    TernaryWeight tw(quant::quantize_ternary(w.f32(), 24, 40), subln);
    Tensor y1 = Tensor::empty({6, 24}, DType::F32), y2 = y1.clone(), dx1 = Tensor::empty({6, 40}, DType::F32), dx2 = dx1.clone();
    bl.forward(y1, x);
    tw.forward(y2, x);
    EXPECT_LT(norm_rel_err(y2.to_vector(), y1.to_vector()), 1e-6);
    bl.backward_input_from(dx1, dy, x, 0.f);
    tw.backward_input_from(dx2, dy, x, 0.f);
    EXPECT_LT(norm_rel_err(dx2.to_vector(), dx1.to_vector()), 1e-6);
    EXPECT_EQ(tw.bytes(), size_t(24 * 12 + 4));  // 2 bits a weight, rows padded to 16 weights, + the scale
  }
}

// A trained BitNet model, exported ternary and loaded as a frozen base
// (--method bitnet-lora), gives the trained model's loss; LoRA on it learns.
TEST(BitNet, TernaryExportAndAdaptersOnIt) {
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    auto bitnet = bitnet_model(lm, 5);
    AdamW opt(bitnet->params(), {0.9f, 0.999f, 1e-8f, 0.f});
    for (int64_t s = 0; s < 10; ++s) step_loss(*bitnet, r, &opt, s);
    LossSum trained = bitnet->forward(r.batch(), 0.f);
    StateDictSource latent(bitnet->hf_state_dict(false));
    ModelOptions bo;
    bo.method = "bitnet-lora";
    bo.targets = {};
    auto frozen = Model::create(lm.config, latent, bo);  // quantized on load
    StateDictSource stored(ternary_state(*frozen));
    bo.targets = {"all-linear"};
    auto adapted = Model::create(lm.config, stored, bo);  // read as stored, LoRA (B = 0) on it
    const double lt = trained.sum / trained.count;
    LossSum a = adapted->forward(r.batch(), 0.f);
    EXPECT_NEAR(a.sum / a.count, lt, 1e-5 * lt) << name;
    AdamW lopt(adapted->params(), {0.9f, 0.999f, 1e-8f, 0.f});
    const double first = step_loss(*adapted, r, &lopt, 0);  // in training mode (GPT-2's dropout)
    double last = 0;
    for (int64_t s = 1; s < 20; ++s) last = step_loss(*adapted, r, &lopt, s);
    EXPECT_LT(last, 0.95 * first) << name;
    for (const Linear* lin : adapted->linears()) EXPECT_NE(dynamic_cast<const TernaryWeight*>(&lin->base()), nullptr);
  }
}

}  // namespace
}  // namespace qtrain::testing
