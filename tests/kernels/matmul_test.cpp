#include "kernels/matmul.h"

#include "tests/kernels/grad_check.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

// c = alpha * op(a) @ op(b) + beta * c, in double, the obvious way.
std::vector<float> naive_gemm(const Tensor& c0, const Tensor& a, const Tensor& b, bool ta, bool tb, float alpha,
                              float beta) {
  const int64_t M = c0.size(0), N = c0.size(1), K = ta ? a.size(0) : a.size(1);
  const float *pa = a.f32(), *pb = b.f32(), *pc = c0.f32();
  std::vector<float> out(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = ta ? pa[k * M + i] : pa[i * K + k];
        const double bv = tb ? pb[j * K + k] : pb[k * N + j];
        s += av * bv;
      }
      out[size_t(i * N + j)] = float(alpha * s + beta * pc[i * N + j]);
    }
  return out;
}

}  // namespace

TEST(Gemm, AllTransposesAlphaBetaAgainstNaiveLoop) {
  const int64_t M = 37, N = 29, K = 53;  // odd sizes: no kernel tile divides them
  int seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, 1.f}, std::pair{-2.f, 0.25f}}) {
        Tensor a = ta ? randn({K, M}, seed++) : randn({M, K}, seed++);
        Tensor b = tb ? randn({N, K}, seed++) : randn({K, N}, seed++);
        Tensor c = randn({M, N}, seed++);
        auto expect = naive_gemm(c, a, b, ta, tb, alpha, beta);
        gemm(c, a, b, ta, tb, alpha, beta);
        EXPECT_LT(max_rel_err(c.to_vector(), expect, 1.0), 1e-4)
            << "trans_a=" << ta << " trans_b=" << tb << " alpha=" << alpha << " beta=" << beta;
      }
}

TEST(Gemm, BetaZeroIgnoresNaNInOutput) {
  Tensor a = randn({4, 3}, 1), b = randn({3, 5}, 2);
  Tensor c = Tensor::from_vector(std::vector<float>(20, std::nanf("")), {4, 5});
  gemm(c, a, b, false, false);
  for (float v : c.to_vector()) EXPECT_FALSE(std::isnan(v));
}

TEST(Gemm, FlattensLeadingDims) {
  Tensor a = randn({2, 3, 8}, 3), w = randn({5, 8}, 4);  // [B,T,C] @ w^T
  Tensor c = Tensor::zeros({2, 3, 5}, DType::F32);
  gemm(c, a, w, false, true);
  Tensor c2 = Tensor::zeros({6, 5}, DType::F32);
  auto expect = naive_gemm(c2, a.view({6, 8}), w, false, true, 1.f, 0.f);
  EXPECT_LT(max_rel_err(c.to_vector(), expect, 1.0), 1e-4);
}

TEST(Gemm, ShapeMismatchIsAnInternalError) {
  Tensor a = randn({4, 3}, 1), b = randn({4, 5}, 2), c = Tensor::zeros({4, 5}, DType::F32);
  EXPECT_THROW(gemm(c, a, b, false, false), Error);
}

TEST(Bias, AddAndBackwardAccumulate) {
  Tensor y = randn({7, 300}, 5), bias = randn({300}, 6);  // > one 256-column block
  auto y0 = y.to_vector(), bv = bias.to_vector();
  add_bias(y, bias);
  auto y1 = y.to_vector();
  for (int64_t n = 0; n < 7; ++n)
    for (int64_t j = 0; j < 300; ++j) ASSERT_EQ(y1[size_t(n * 300 + j)], y0[size_t(n * 300 + j)] + bv[size_t(j)]);

  Tensor dy = randn({7, 300}, 7);
  Tensor db = Tensor::from_vector(std::vector<float>(300, 1.f), {300});  // accumulates onto 1
  bias_backward(db, dy);
  auto d = dy.to_vector();
  std::vector<float> expect(300, 1.f);
  for (int64_t n = 0; n < 7; ++n)
    for (int64_t j = 0; j < 300; ++j) expect[size_t(j)] += d[size_t(n * 300 + j)];
  EXPECT_LT(max_rel_err(db.to_vector(), expect, 1e-3), 1e-5);
}
