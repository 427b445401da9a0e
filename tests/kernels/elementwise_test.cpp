#include "kernels/elementwise.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(Elementwise, AxpyAddScale) {
  Tensor y = randn({5, 7}, 1), x = randn({35}, 2);
  auto y0 = y.to_vector(), xv = x.to_vector();
  axpy(y, -0.5f, x);
  add_inplace(y, x);
  scale_inplace(y, 2.f);
  auto y1 = y.to_vector();
  for (size_t i = 0; i < y0.size(); ++i) EXPECT_FLOAT_EQ(y1[i], 2.f * ((y0[i] + -0.5f * xv[i]) + xv[i]));
  EXPECT_THROW(axpy(y, 1.f, randn({34}, 3)), Error);
}

TEST(Elementwise, SumSquaresIsDoubleAndExact) {
  std::vector<float> v(10001, 0.1f);
  v[5000] = 3.f;
  const double expect = 10000 * double(0.1f) * double(0.1f) + 9.0;
  EXPECT_NEAR(sum_squares(Tensor::from_vector(v, {10001})), expect, 1e-9 * expect);
}

TEST(Elementwise, ConvertRoundsToBf16) {
  Tensor src = Tensor::from_vector({1.f, 1.f + 1.f / 256, 1.f + 3.f / 256, -2.5f}, {4});
  Tensor dst = Tensor::empty({4}, DType::BF16);
  convert(dst, src);
  const uint16_t* p = dst.data<uint16_t>();
  EXPECT_EQ(p[0], 0x3f80);
  EXPECT_EQ(p[1], 0x3f80);  // tie goes to even
  EXPECT_EQ(p[2], 0x3f82);
  Tensor back = Tensor::empty({4}, DType::F32);
  convert(back, dst);
  EXPECT_EQ(back.to_vector()[3], -2.5f);
}

TEST(Elementwise, CopyAndAddColumnBlocks) {
  Tensor qkv = randn({3, 12}, 4);  // [N, 3*C], C = 4
  Tensor k = Tensor::empty({3, 4}, DType::F32);
  copy_cols(k, qkv, 4);
  auto w = qkv.to_vector(), kv = k.to_vector();
  for (int n = 0; n < 3; ++n)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(kv[size_t(n * 4 + j)], w[size_t(n * 12 + 4 + j)]);
  Tensor dqkv = Tensor::zeros({3, 12}, DType::F32);
  add_cols(dqkv, k, 8);
  add_cols(dqkv, k, 8);
  auto d = dqkv.to_vector();
  for (int n = 0; n < 3; ++n)
    for (int j = 0; j < 12; ++j) EXPECT_EQ(d[size_t(n * 12 + j)], j >= 8 ? 2 * kv[size_t(n * 4 + j - 8)] : 0.f);
  EXPECT_THROW(copy_cols(k, qkv, 9), Error);
}

TEST(HashUniform, MatchesTheDocumentedFormula) {
  // Values from the Python transcription in make_kernel_fixtures.py: a CUDA
  // kernel must reproduce these bit for bit.
  KernelFixture f("hash_uniform");
  for (const auto& c : f.doc().at("cases")) {
    const uint64_t seed = std::stoull(c.at("seed").get<std::string>());
    const uint64_t index = std::stoull(c.at("index").get<std::string>());
    EXPECT_EQ(hash_uniform(seed, index), float(c.at("u").get<double>())) << seed << " " << index;
  }
}

TEST(HashUniform, LooksUniform) {
  double sum = 0;
  int below_quarter = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float u = hash_uniform(7, uint64_t(i));
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    sum += u;
    below_quarter += u < 0.25f;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(double(below_quarter) / n, 0.25, 0.005);
  EXPECT_NE(hash_uniform(7, 0), hash_uniform(8, 0));
}

TEST(Dropout, MaskScaleOffsetAndBackward) {
  const int64_t n = 50000;
  const float p = 0.3f;
  Tensor x = randn({n}, 5), out = Tensor::empty({n}, DType::F32), mask = Tensor::empty({n}, DType::U8);
  dropout_forward(out, mask, x, p, 11, 1000);
  const uint8_t* m = mask.data<uint8_t>();
  auto xv = x.to_vector(), ov = out.to_vector();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = hash_uniform(11, 1000 + uint64_t(i)) >= p;  // the documented rule
    ASSERT_EQ(m[i], keep ? 1 : 0);
    ASSERT_EQ(ov[size_t(i)], keep ? xv[size_t(i)] * (1.f / (1.f - p)) : 0.f);
    kept += keep;
  }
  EXPECT_NEAR(double(kept) / n, 0.7, 0.01);

  // A view starting at element 1000 with offset 1000 draws the same mask.
  Tensor out2 = Tensor::empty({n - 1000}, DType::F32), mask2 = Tensor::empty({n - 1000}, DType::U8);
  dropout_forward(out2, mask2, x.flat(1000, n), p, 11, 2000);
  EXPECT_EQ(mask2.data<uint8_t>()[0], m[1000]);
  EXPECT_EQ(mask2.data<uint8_t>()[500], m[1500]);

  // Backward is the same masked scaling: check by finite differences on a small slice.
  Tensor xs = randn({40}, 6), r = randn({40}, 7), os = Tensor::empty({40}, DType::F32),
         ms = Tensor::empty({40}, DType::U8);
  auto loss = [&] {
    dropout_forward(os, ms, xs, 0.5f, 3, 0);
    return weighted_sum(os, r);
  };
  loss();
  Tensor dx = Tensor::empty({40}, DType::F32);
  dropout_backward(dx, r, ms, 0.5f);
  EXPECT_GRAD_MATCHES(dx, numeric_grad(xs, loss), "dropout dx");

  // p = 0 copies x exactly and keeps everything.
  dropout_forward(out, mask, x, 0.f, 1, 0);
  EXPECT_EQ(out.to_vector(), xv);
}
