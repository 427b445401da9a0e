// HQQ (kernels/quant/hqq.h, models/hqq_weight.h) against the PyPI hqq package
// (tests/fixtures/make_hqq_fixtures.py): codes, scale, zero and the dequantized
// matrix of a few small weights, and a tiny-llama hqq-lora forward loss and LoRA
// gradients against peft on hqq-dequantized weights, for 4 and 2 bits.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/hqq_dequant.h"
#include "kernels/matmul.h"
#include "models/hqq_weight.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

struct HqqFixture {
  int64_t rows, cols;
  std::vector<float> w, scale, zero, deq;
  std::vector<uint8_t> q;
};

HqqFixture load(const std::string& name, int64_t rows, int64_t cols, int bits) {
  const std::string bytes = fixture_text("hqq/" + name + "_" + std::to_string(bits) + ".bin");
  HqqFixture f{rows, cols, {}, {}, {}, {}, {}};
  const int64_t n = rows * cols, ng = n / 64;
  size_t off = 0;
  auto take = [&](auto& v, int64_t count) {
    v.resize(size_t(count));
    const size_t len = size_t(count) * sizeof(v[0]);
    EXPECT_LE(off + len, bytes.size());
    std::memcpy(v.data(), bytes.data() + off, len);
    off += len;
  };
  take(f.w, n);
  take(f.q, n);
  take(f.scale, ng);
  take(f.zero, ng);
  take(f.deq, n);
  EXPECT_EQ(off, bytes.size());
  return f;
}

struct Case {
  const char* name;
  int64_t rows, cols;
};
constexpr Case kCases[] = {{"normal_64x128", 64, 128}, {"student_32x160", 32, 160}};

}  // namespace

// Same solver, same F32 operations in the same order: the scale is bit-identical; the zero
// differs by about an ulp (hqq's torch.mean sums in vectorized F32, we sum in double), so
// the dequantized values differ by ~1e-7 relative and a code could flip only where
// w * scale + zero lands within an ulp of a .5 (measured on these fixtures: no code differs).
TEST(Hqq, MatchesHqqPackage) {
  for (int bits : {4, 2})
    for (const Case& c : kCases) {
      SCOPED_TRACE(std::string(c.name) + " " + std::to_string(bits) + "-bit");
      HqqFixture f = load(c.name, c.rows, c.cols, bits);
      quant::HqqPacked p = quant::quantize_hqq(f.w.data(), c.rows, c.cols, bits);
      int64_t diff = 0;
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t k = 0; k < c.cols; ++k) diff += p.code(r, k) != int(f.q[size_t(r * c.cols + k)]);
      EXPECT_LE(double(diff) / double(c.rows * c.cols), 1e-3) << diff << " codes differ";
      EXPECT_EQ(p.scale, f.scale);
      EXPECT_LT(max_rel_err(p.zero, f.zero), 1e-6);
      std::vector<float> deq(size_t(c.rows * c.cols));
      quant::dequantize_hqq_rows(p, 0, c.rows, deq.data());
      EXPECT_LT(norm_rel_err(deq, f.deq), 1e-6);
      // the quantization is real: 4-bit within ~10%, 2-bit within ~50% rms
      const double err = norm_rel_err(deq, f.w);
      EXPECT_GT(err, 1e-2);
      EXPECT_LT(err, bits == 4 ? 0.15 : 0.6);
    }
}

// The solver runs its groups on all cores (2048 groups here, over the 1024 that turn threads on):
// one thread and four give the same codes, scales and zeros, bit for bit.
TEST(Hqq, SameResultWhateverTheThreadCount) {
  Tensor w = randn({256, 512}, 41, 0.05f);
  const int saved = omp_get_max_threads();
  for (int bits : {4, 2}) {
    omp_set_num_threads(1);
    const quant::HqqPacked one = quant::quantize_hqq(w.f32(), 256, 512, bits);
    omp_set_num_threads(4);
    const quant::HqqPacked four = quant::quantize_hqq(w.f32(), 256, 512, bits);
    EXPECT_EQ(one.codes, four.codes) << bits;
    EXPECT_EQ(one.scale, four.scale) << bits;
    EXPECT_EQ(one.zero, four.zero) << bits;
  }
  omp_set_num_threads(saved);
}

// The solver skips the shrink's pow() for groups whose residuals are all small, and computes the
// terms in a vectorized pass: its zeros must still be the plain per-weight loop's, bit for bit,
// both where the shrink is 0 (weights ~0.02) and where it is not (weights ~1, large residuals).
// The plain loop here is hqq's optimize_weights_proximal written out directly.
std::vector<float> plain_zeros(const std::vector<float>& w, int bits) {
  const int64_t ng = int64_t(w.size()) / 64;
  const float qmax = float((1 << bits) - 1);
  std::vector<float> scale(static_cast<size_t>(ng)), zero(static_cast<size_t>(ng));
  for (int64_t g = 0; g < ng; ++g) {
    const float* x = w.data() + g * 64;
    const auto [mn, mx] = std::minmax_element(x, x + 64);
    const float denom = *mx - *mn;
    float s = (1.f / denom) * qmax;
    if (std::fabs(denom) <= 1e-4f) s = 1.f;
    s = std::min(s, 2e4f);
    scale[size_t(g)] = s;
    zero[size_t(g)] = bits == 4 ? std::nearbyint(-*mn * s) : -*mn * s;
  }
  double best = INFINITY;
  for (int it = 0; it < 20; ++it) {
    std::vector<float> next(static_cast<size_t>(ng));
    double err = 0;
    for (int64_t g = 0; g < ng; ++g) {
      const float* x = w.data() + g * 64;
      const float s = scale[size_t(g)], z = zero[size_t(g)];
      double acc = 0;
      for (int j = 0; j < 64; ++j) {
        const float q = std::min(std::max(std::nearbyint(x[j] * s + z), 0.f), qmax);
        const float wr = (q - z) / s, r = x[j] - wr, a = std::fabs(r);
        const float sh = std::max(a - 0.1f * std::pow(a, 0.7f - 1.f), 0.f);
        const float we = r > 0.f ? sh : (r < 0.f ? -sh : 0.f);
        acc += double(q - (x[j] - we) * s);
        err += double(std::fabs(x[j] - wr));
      }
      next[size_t(g)] = float(acc / 64.0);
    }
    zero = next;
    err /= double(w.size());
    if (err < best) best = err;
    else break;
  }
  return zero;
}

TEST(Hqq, SolverEqualsThePlainLoop) {
  for (float sd : {0.02f, 1.f})
    for (int bits : {4, 2}) {
      Tensor w = randn({64, 320}, 43, sd);
      const std::vector<float> v = w.to_vector();
      const quant::HqqPacked p = quant::quantize_hqq(w.f32(), 64, 320, bits);
      EXPECT_EQ(p.zero, plain_zeros(v, bits)) << "sd " << sd << " bits " << bits;
    }
}

TEST(Hqq, PackedSizeAndOp) {
  for (int bits : {4, 2}) {
    Tensor w = randn({48, 160}, 3, 0.02f);
    HqqWeight q(w, bits);
    // codes + F32 scale and zero per 64 weights: 0.625 / 0.375 bytes per weight
    EXPECT_EQ(q.bytes(), size_t(48 * 160 * bits / 8 + 48 * 160 / 64 * 8));
    // the op (the GPU kernel's CPU reference) agrees with the row dequantizer
    const auto& p = q.packed();
    Tensor codes = Tensor::empty({int64_t(p.codes.size())}, DType::U8);
    std::memcpy(codes.raw(), p.codes.data(), p.codes.size());
    Tensor s = Tensor::from_vector(p.scale, {int64_t(p.scale.size())});
    Tensor z = Tensor::from_vector(p.zero, {int64_t(p.zero.size())});
    Tensor out = Tensor::empty({48, 160}, DType::F32);
    dequantize_hqq(out, codes, s, z, bits);
    Tensor dense = q.dense_f32();
    EXPECT_EQ(out.to_vector(), dense.to_vector());
    // products go through the dense dequantized matrix
    Tensor x = randn({3, 160}, 4), y = Tensor::empty({3, 48}, DType::F32), want = Tensor::empty({3, 48}, DType::F32);
    q.forward(y, x);
    gemm(want, x, dense, false, true);
    EXPECT_LT(norm_rel_err(y.to_vector(), want.to_vector()), 1e-6);
    EXPECT_LT(norm_rel_err(dense.to_vector(), w.to_vector()), bits == 4 ? 0.15 : 0.6);
  }
  EXPECT_THROW(quant::quantize_hqq(nullptr, 1, 64, 3), Error);
}

TEST(Hqq, HqqLoraTinyLlamaMatchesPeftOnHqqWeights) {
  const Ref r = load_ref("tiny-llama");
  auto ref = fixture_json("hqq/hqq-tiny-llama-ref.json");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora"));
  for (int bits : {4, 2}) {
    SCOPED_TRACE(std::to_string(bits) + "-bit");
    ModelOptions opt = adapter_options(a, "hqq-lora");
    opt.hqq_bits = bits;
    auto m = Model::create(lm.config, *lm.weights, opt);
    apply_peft_adapter(*m, a);
    const double want = ref["hqq" + std::to_string(bits) + "_loss"].get<double>();
    LossSum s = m->forward(r.batch(), 1.f / 30.f);
    ASSERT_EQ(s.count, 30);
    EXPECT_NEAR(s.sum / s.count, want, 1e-4 * want);
    m->backward();
    expect_grads_match_peft(*m, SafetensorsFile(fixture("hqq/hqq" + std::to_string(bits) + "-tiny-llama-grads.safetensors")),
                            1e-4);
  }
  ModelOptions bad;
  bad.method = "hqq-lora";
  bad.hqq_bits = 3;
  EXPECT_THROW(Model::create(lm.config, *lm.weights, bad), Error);
}
