#include "kernels/loss.h"

#include "kernels/cpu/loss_chunks.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

// The fixture's lm_head weight, from the formula in make_kernel_fixtures.py (ce_weight).
Tensor ce_weight(int64_t V, int64_t C) {
  Tensor w = Tensor::empty({V, C}, DType::F32);
  for (int64_t v = 0; v < V; ++v)
    for (int64_t c = 0; c < C; ++c) w.f32()[v * C + c] = float(0.5 * std::sin(double(v) * 0.37 + double(c) * 1.71 + 0.3));
  return w;
}

Tensor targets_tensor(const std::vector<int32_t>& t) {
  Tensor r = Tensor::empty({int64_t(t.size())}, DType::I32);
  std::copy(t.begin(), t.end(), r.i32());
  return r;
}

// Sum of per-row losses, unchunked, in double: the obvious way.
double naive_loss(const Tensor& x, const Tensor& w, const Tensor& targets) {
  const int64_t N = x.size(0), C = x.size(1), V = w.size(0);
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int32_t t = targets.i32()[n];
    if (t == kIgnoreIndex) continue;
    std::vector<double> logits(static_cast<size_t>(V));
    double mx = -1e300;
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += double(x.f32()[n * C + c]) * w.f32()[v * C + c];
      logits[size_t(v)] = s;
      mx = std::max(mx, s);
    }
    double z = 0;
    for (double l : logits) z += std::exp(l - mx);
    total += mx + std::log(z) - logits[size_t(t)];
  }
  return total;
}

double sum_squares_for_test(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector()) s += double(v) * v;
  return s;
}

}  // namespace

TEST(CrossEntropy, FullVocabularyMatchesPyTorch) {
  KernelFixture f("cross_entropy");
  const int64_t V = int64_t(f.scalar("V"));
  Tensor x = f.tensor("x"), targets = f.ints("targets");
  Tensor w = ce_weight(V, x.size(1));
  Tensor dx = Tensor::empty(x.shape(), DType::F32), dw = Tensor::zeros(w.shape(), DType::F32);
  const double loss = lm_head_cross_entropy(dx, dw, x, w, targets, float(f.scalar("grad_scale")));
  EXPECT_NEAR(loss, f.scalar("loss_sum"), 1e-4 * std::abs(f.scalar("loss_sum")));
  EXPECT_MATCHES_REF(dx.to_vector(), f.vec("dx"), "cross_entropy dx");
  std::vector<float> rows;
  for (float r : f.vec("rows"))
    for (int64_t c = 0; c < x.size(1); ++c) rows.push_back(dw.f32()[int64_t(r) * x.size(1) + c]);
  EXPECT_MATCHES_REF(rows, f.vec("dw_rows"), "cross_entropy dw rows");
  EXPECT_NEAR(sum_squares_for_test(dw), f.scalar("dw_sum_squares"), 2e-4 * f.scalar("dw_sum_squares"));
  // Ignored rows get a zero gradient.
  for (int64_t c = 0; c < x.size(1); ++c) EXPECT_EQ(dx.f32()[1 * x.size(1) + c], 0.f);
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  const int64_t N = 5, C = 6, V = 11;
  const float grad_scale = 1.f / 3;
  Tensor x = randn({N, C}, 1), w = randn({V, C}, 2);
  Tensor targets = targets_tensor({3, kIgnoreIndex, 10, 0, 3});
  auto loss = [&] { return grad_scale * lm_head_cross_entropy(Tensor(), Tensor(), x, w, targets, grad_scale); };
  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({V, C}, DType::F32);
  lm_head_cross_entropy(dx, dw, x, w, targets, grad_scale);
  EXPECT_GRAD_MATCHES(dx, numeric_grad(x, loss), "cross_entropy dx");
  EXPECT_GRAD_MATCHES(dw, numeric_grad(w, loss), "cross_entropy dw");
}

TEST(CrossEntropy, ChunkingOverManyRowsMatchesNaiveAndAccumulatesDw) {
  const int64_t N = 150, C = 8, V = 23;
  Tensor x = randn({N, C}, 3), w = randn({V, C}, 4);
  std::vector<int32_t> t;
  for (int64_t n = 0; n < N; ++n) t.push_back(n % 7 == 0 ? kIgnoreIndex : int32_t((n * 5) % V));
  Tensor targets = targets_tensor(t);
  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({V, C}, DType::F32);
  const double loss = lm_head_cross_entropy(dx, dw, x, w, targets, 0.01f);
  const double expect = naive_loss(x, w, targets);
  EXPECT_NEAR(loss, expect, 1e-5 * expect);
  // 128 active rows in chunks of 20: six full chunks and a partial one give the same (up to
  // float rounding: BLAS may pick another kernel for 20 rows than for 128, ~1e-9 seen).
  Tensor dx20 = Tensor::empty({N, C}, DType::F32), dw20 = Tensor::zeros({V, C}, DType::F32);
  EXPECT_NEAR(cpu::lm_head_cross_entropy_chunked(dx20, dw20, x, w, targets, 0.01f, 20), loss, 1e-7 * loss);
  EXPECT_LT(max_rel_err(dx20.to_vector(), dx.to_vector(), 1e-3), 1e-5);
  EXPECT_LT(max_rel_err(dw20.to_vector(), dw.to_vector(), 1e-3), 1e-5);
  // Same loss with no gradient requested; dw accumulates on a second call.
  auto dw1 = dw.to_vector();
  EXPECT_DOUBLE_EQ(lm_head_cross_entropy(Tensor(), Tensor(), x, w, targets, 0.01f), loss);
  lm_head_cross_entropy(Tensor(), dw, x, w, targets, 0.01f);
  std::vector<float> twice;
  for (float v : dw1) twice.push_back(2 * v);
  EXPECT_LT(max_rel_err(dw.to_vector(), twice, 1e-3), 1e-5);
  // All rows ignored: zero loss, zero dx.
  Tensor none = targets_tensor(std::vector<int32_t>(size_t(N), kIgnoreIndex));
  EXPECT_EQ(lm_head_cross_entropy(dx, Tensor(), x, w, none, 1.f), 0.0);
  EXPECT_EQ(sum_squares_for_test(dx), 0.0);
}
