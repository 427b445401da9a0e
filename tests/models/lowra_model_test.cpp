// --method lowra on a model (models/methods/lowra.cpp): the whole-model plan
// meets the --lowra-bits budget over every quantized Linear with the paper's
// precisions, more bits quantize closer to the float weights, the default
// LoftQ (5 rounds) starts the model closer to the float model than the plain
// LowRA base, and the base is rebuilt identically whatever the --seed (eval,
// generate and export rebuild it from the same flags).
#include <cmath>
#include <set>

#include "models/lowra_weight.h"
#include "models/model.h"
#include "models/synthetic_model.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

std::unique_ptr<Model> build(const LoadedModel& lm, double bits, int loftq, uint64_t seed = 0) {
  ModelOptions o;
  o.method = "lowra";
  o.lowra_bits = bits;
  o.loftq_iters = loftq;
  o.seed = seed;
  o.lora.alpha = float(o.lora.r);  // scale 1: LoftQ's start is Q + B A
  return Model::create(lm.config, *lm.weights, o);
}

double rel_diff(const Tensor& a, const Tensor& b) {
  double d = 0, n = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    d += std::pow(double(a.f32()[i]) - b.f32()[i], 2);
    n += std::pow(double(b.f32()[i]), 2);
  }
  return std::sqrt(d / n);
}

const LowraWeight& lowra_base(const Linear* lin) {
  const auto* w = dynamic_cast<const LowraWeight*>(&lin->base());
  EXPECT_NE(w, nullptr) << lin->name();
  return *w;
}

TEST(LowraModel, PlanMeetsTheBudgetWithThePapersPrecisions) {
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  double prev_err = INFINITY;
  for (double target : {1.5, 1.75, 2.0, 2.5, 3.0, 4.0}) {
    auto m = build(lm, target, 0);
    int64_t code_bits = 0, weights = 0;
    double err = 0;
    std::set<int> seen;
    for (const Linear* lin : m->linears()) {
      const quant::LowraPacked& p = lowra_base(lin).packed();
      for (int64_t r = 0; r < p.rows; ++r) {
        code_bits += int64_t(p.bits[size_t(r)]) * p.cols;
        seen.insert(p.bits[size_t(r)]);
      }
      weights += p.rows * p.cols;
      const Tensor q = lin->base().dense_f32();
      const Tensor w = lm.weights->load_f32(lin->name() + ".weight");
      for (int64_t i = 0; i < w.numel(); ++i) err += std::pow(double(q.f32()[i]) - w.f32()[i], 2);
    }
    const double avg = double(code_bits) / double(weights);
    // at most the budget, and short of it by less than one channel's step per row-length group (2)
    EXPECT_LE(avg, target + 1e-12) << target;
    EXPECT_GT(avg, target - 2.0 * 4 * 128 / double(weights)) << target;
    if (target >= 2.0) EXPECT_EQ(seen.count(1), 0u) << target;  // {2, 4} from 2 bits up, as the paper
    if (target == 1.5) EXPECT_EQ(seen.count(1), 1u);
    EXPECT_LT(err, prev_err) << target << ": more bits, less error";
    prev_err = err;
  }
}

TEST(LowraModel, DefaultLoftqStartsCloserToTheFloatModel) {
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  const int B = 2, T = 16;
  std::vector<int32_t> ids(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) ids[size_t(i)] = (i * 37 + 5) % 512, tgt[size_t(i)] = (i * 53 + 11) % 512;
  const TokenBatch b{B, T, ids.data(), tgt.data()};
  ModelOptions fo;
  fo.method = "lora";  // B = 0: the float model
  const Tensor f = Model::create(lm.config, *lm.weights, fo)->logits(b);
  const Tensor plain = build(lm, 2.0, 0)->logits(b);
  const Tensor loftq = build(lm, 2.0, -1)->logits(b);  // -1: the method's default, 5 rounds
  EXPECT_LT(rel_diff(loftq, f), 0.95 * rel_diff(plain, f));
}

TEST(LowraModel, RebuiltIdenticallyWhateverTheSeed) {
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  auto a = build(lm, 1.75, 0, 0), b = build(lm, 1.75, 0, 12345);
  ASSERT_EQ(a->linears().size(), b->linears().size());
  for (size_t i = 0; i < a->linears().size(); ++i) {
    const quant::LowraPacked &pa = lowra_base(a->linears()[i]).packed(), &pb = lowra_base(b->linears()[i]).packed();
    EXPECT_EQ(pa.bits, pb.bits) << i;
    EXPECT_EQ(pa.codes, pb.codes) << i;
    EXPECT_EQ(pa.lut, pb.lut) << i;
  }
}

TEST(LowraModel, RowsOfPartialBlocksAreAUserError) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));  // intermediate 160: down_proj rows are 2.5 blocks
  ModelOptions o;
  o.method = "lowra";
  try {
    Model::create(lm.config, *lm.weights, o);
    FAIL() << "built";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qtrain::testing
