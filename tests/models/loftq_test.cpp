// LoftQ initialisation (models/loftq.h): the SVD split, the residual error
// over rounds, peft's result (fixtures: tests/fixtures/make_loftq_fixtures.py)
// and a model that starts closer to the float model than plain QLoRA.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/matmul.h"
#include "models/loftq.h"
#include "models/model.h"
#include "models/quant_weight.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

Tensor product(const LowRankPair& p) {
  Tensor d = Tensor::empty({p.b.size(0), p.a.size(1)}, DType::F32);
  gemm(d, p.b, p.a, false, false);
  return d;
}

double rel_diff(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += std::pow(double(a.f32()[i]) - b.f32()[i], 2);
    den += std::pow(double(b.f32()[i]), 2);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

std::unique_ptr<BaseWeight> nf4(const Tensor& w) {
  return std::make_unique<Block4Weight>(w, quant::Code4::NF4, /*double_quant=*/false);
}

TEST(Loftq, FullRankSplitReconstructsAndTruncationIsTheBestRankR) {
  Tensor m = randn({24, 40}, 5, 1.f);
  EXPECT_LT(rel_diff(product(low_rank_split(m, 24)), m), 1e-5);
  // A rank-3 matrix is recovered exactly at r = 3, and the factors are split
  // evenly (B = U sqrt(S), A = sqrt(S) Vh: the column norms of B equal the row norms of A).
  LowRankPair p{randn({24, 3}, 6, 1.f), randn({3, 40}, 7, 1.f)};
  Tensor m3 = product(p);
  LowRankPair q = low_rank_split(m3, 3);
  EXPECT_LT(rel_diff(product(q), m3), 1e-5);
  for (int j = 0; j < 3; ++j) {
    double nb = 0, na = 0;
    for (int i = 0; i < 24; ++i) nb += std::pow(q.b.f32()[i * 3 + j], 2);
    for (int i = 0; i < 40; ++i) na += std::pow(q.a.f32()[j * 40 + i], 2);
    EXPECT_NEAR(nb, na, 1e-4 * na) << j;
  }
  // The sign convention (kernels/svd.h): each column of B has its largest-magnitude
  // entry positive. Flipping m flips every factor pair's sign in the SVD, so m and
  // -m split into B A and -B A with B the same: the convention, not LAPACK, chose it.
  const LowRankPair f = low_rank_split(m, 6);
  Tensor neg = m.clone();
  for (int64_t i = 0; i < neg.numel(); ++i) neg.f32()[i] = -neg.f32()[i];
  const LowRankPair g = low_rank_split(neg, 6);
  for (int j = 0; j < 6; ++j) {
    int top = 0;
    for (int i = 1; i < 24; ++i)
      if (std::fabs(f.b.f32()[i * 6 + j]) > std::fabs(f.b.f32()[top * 6 + j])) top = i;
    EXPECT_GT(f.b.f32()[top * 6 + j], 0.f) << j;
    for (int i = 0; i < 24; ++i) EXPECT_NEAR(g.b.f32()[i * 6 + j], f.b.f32()[i * 6 + j], 1e-5) << j;
    for (int i = 0; i < 40; ++i) EXPECT_NEAR(g.a.f32()[j * 40 + i], -f.a.f32()[j * 40 + i], 1e-5) << j;
  }
  // r above min(out, in): the extra columns are zero.
  LowRankPair big = low_rank_split(m, 30);
  EXPECT_EQ(big.b.size(1), 30);
  EXPECT_EQ(big.b.f32()[29], 0.f);
  EXPECT_LT(rel_diff(product(big), m), 1e-5);
}

// A k-round run is the first k rounds of a longer one, so one 5-round run gives
// the error after 1..5 rounds.
TEST(Loftq, ResidualErrorDecreasesOverRounds) {
  Tensor w = randn({64, 128}, 11, 0.02f);
  LoftqResult r = loftq(w, 8, 5, nf4);
  ASSERT_EQ(r.rel_err.size(), 5u);
  EXPECT_LT(r.rel_err[0], r.plain_rel_err);
  for (size_t k = 1; k < 5; ++k) EXPECT_LE(r.rel_err[k], r.rel_err[k - 1] * (1 + 1e-6)) << k;
  EXPECT_LT(r.rel_err[4], 0.98 * r.rel_err[0]);
  // The reported error is ||W - Q - B A|| of what is returned (scale 1).
  Tensor approx = r.base->dense_f32();
  Tensor ba = product(r.init);
  for (int64_t i = 0; i < approx.numel(); ++i) approx.f32()[i] += ba.f32()[i];
  EXPECT_NEAR(rel_diff(approx, w), r.rel_err[4], 1e-6);
  EXPECT_DOUBLE_EQ(loftq(w, 8, 2, nf4).rel_err.back(), r.rel_err[1]);
}

TEST(Loftq, MatchesPeft) {
  const nlohmann::json ref = fixture_json("loftq/loftq-ref.json");
  SafetensorsFile f(fixture("loftq/loftq-ref.safetensors"));
  for (const auto& c : ref["cases"]) {
    const std::string n = c["name"];
    const int iters = c["iters"];
    Tensor w = f.load_f32(n + ".W");
    LoftqResult r = loftq(w, c["r"].get<int>(), iters, nf4);
    // SVD signs are arbitrary: compare the base and the product B A, not A and B.
    Tensor deq = r.base->dense_f32(), want_deq = f.load_f32(n + ".deq");
    int64_t differ = 0;
    for (int64_t i = 0; i < deq.numel(); ++i) differ += deq.f32()[i] != want_deq.f32()[i];
    // Round one quantizes W itself: bit-identical to bitsandbytes. Later rounds
    // quantize W - B A, whose float rounding moves a block's absmax by an ulp
    // (seen: ~1e-7 relative) and could move an entry on a rounding boundary to
    // the next NF4 code (seen: none).
    if (iters == 1) EXPECT_EQ(differ, 0) << n;
    int64_t code_moves = 0;  // entries off by more than rounding in the block's absmax
    for (int64_t i = 0; i < deq.numel(); ++i) code_moves += std::fabs(deq.f32()[i] - want_deq.f32()[i]) > 1e-4f * 0.02f;
    EXPECT_LE(code_moves, deq.numel() / 1000) << n << ": " << differ << " differ at all";
    LowRankPair want{f.load_f32(n + ".lora_B"), f.load_f32(n + ".lora_A")};
    EXPECT_LT(rel_diff(product(r.init), product(want)), 1e-4) << n;  // seen: ~3e-6
    EXPECT_NEAR(r.rel_err.back(), c["loftq_rel_err_by_iters"][iters - 1].get<double>(), 1e-6) << n;
    EXPECT_NEAR(r.plain_rel_err, c["plain_nf4_rel_err"].get<double>(), 1e-6) << n;
  }
}

struct Start {
  double loss;
  Tensor logits;
};
Start start_of(const LoadedModel& lm, const Ref& ref, const std::string& method, int loftq_iters, int r) {
  ModelOptions opt;
  opt.method = method;
  opt.lora.r = r;
  opt.lora.alpha = float(r);  // scale 1: the LoftQ start is Q + B A
  opt.loftq_iters = loftq_iters;
  auto m = Model::create(lm.config, *lm.weights, opt);
  LossSum s = m->forward(ref.batch(), 0.f);
  return {s.sum / double(s.count), m->logits(ref.batch())};
}

// The fixture models have random weights, so the loss sits on a slope in a
// random direction and a smaller weight error does not always move it less
// (at r 8 tiny-llama's LoftQ loss is further off than QLoRA's while its logits
// are closer); the logits' distance to the float model's is the sound measure,
// and the loss is checked where the residual is mostly captured (r 32).
TEST(Loftq, QloraStartsCloserToTheFloatModel) {
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref ref = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    const Start f = start_of(lm, ref, "lora", 0, 8);  // B = 0: the float model
    const Start q = start_of(lm, ref, "qlora", 0, 8);
    const Start l8 = start_of(lm, ref, "qlora", 2, 8);
    EXPECT_LT(rel_diff(l8.logits, f.logits), 0.85 * rel_diff(q.logits, f.logits)) << name;
    const Start l32 = start_of(lm, ref, "qlora", 2, 32);
    EXPECT_LT(rel_diff(l32.logits, f.logits), 0.5 * rel_diff(q.logits, f.logits)) << name;
    EXPECT_LT(std::fabs(l32.loss - f.loss), 0.7 * std::fabs(q.loss - f.loss))
        << name << ": float " << f.loss << " qlora " << q.loss << " loftq " << l32.loss;
  }
}

TEST(Loftq, RefusedWithoutAQuantizedBaseOrALoraAdapter) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto refused = [&](const std::string& method, const std::string& adapter, int iters) {
    ModelOptions opt;
    opt.method = method;
    opt.adapter_type = adapter;
    opt.loftq_iters = iters;
    try {
      Model::create(lm.config, *lm.weights, opt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--loftq-iters"), std::string::npos) << e.what();
      return true;
    }
    return false;
  };
  EXPECT_TRUE(refused("lora", "", 1));
  EXPECT_TRUE(refused("full", "", 1));
  EXPECT_TRUE(refused("qlora", "dora", 1));
  EXPECT_TRUE(refused("qlora", "ia3", 1));
  EXPECT_TRUE(refused("qlora", "", -2));
  EXPECT_FALSE(refused("qlora", "", -1));  // -1: the method's default, none for qlora
  EXPECT_FALSE(refused("lora", "", -1));
  EXPECT_FALSE(refused("qlora", "", 1));
  EXPECT_FALSE(refused("lora", "", 0));
}

}  // namespace
}  // namespace qtrain::testing
