#include "kernels/norm.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(LayerNorm, ForwardAndGradsMatchPyTorch) {
  KernelFixture f("layernorm");
  Tensor x = f.tensor("x"), w = f.tensor("w"), b = f.tensor("b");
  const int64_t N = x.size(0), C = x.size(1);
  Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32),
         rstd = Tensor::empty({N}, DType::F32);
  layernorm_forward(out, mean, rstd, x, w, b, float(f.scalar("eps")));
  EXPECT_MATCHES_REF(out.to_vector(), f.vec("out"), "layernorm out");

  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({C}, DType::F32),
         db = Tensor::zeros({C}, DType::F32);
  layernorm_backward(dx, dw, db, f.tensor("dout"), x, w, mean, rstd);
  EXPECT_MATCHES_REF(dx.to_vector(), f.vec("dx"), "layernorm dx");
  EXPECT_MATCHES_REF(dw.to_vector(), f.vec("dw"), "layernorm dw");
  EXPECT_MATCHES_REF(db.to_vector(), f.vec("db"), "layernorm db");
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  const int64_t N = 3, C = 70;  // C > one 64-column block
  Tensor x = randn({N, C}, 1, 2.f), w = randn({C}, 2), b = randn({C}, 3), r = randn({N, C}, 4);
  Tensor out = Tensor::empty({N, C}, DType::F32), mean = Tensor::empty({N}, DType::F32),
         rstd = Tensor::empty({N}, DType::F32);
  auto loss = [&] {
    layernorm_forward(out, mean, rstd, x, w, b, 1e-5f);
    return weighted_sum(out, r);
  };
  loss();
  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({C}, DType::F32),
         db = Tensor::zeros({C}, DType::F32);
  layernorm_backward(dx, dw, db, r, x, w, mean, rstd);
  EXPECT_GRAD_MATCHES(dx, numeric_grad(x, loss), "layernorm dx");
  EXPECT_GRAD_MATCHES(dw, numeric_grad(w, loss), "layernorm dw");
  EXPECT_GRAD_MATCHES(db, numeric_grad(b, loss), "layernorm db");

  // dw, db accumulate; undefined ones are skipped.
  auto dw1 = dw.to_vector();
  Tensor dx2 = Tensor::empty({N, C}, DType::F32);
  layernorm_backward(dx2, dw, Tensor(), r, x, w, mean, rstd);
  auto dw2 = dw.to_vector();
  for (size_t i = 0; i < dw1.size(); ++i) EXPECT_FLOAT_EQ(dw2[i], 2 * dw1[i]);
  EXPECT_EQ(dx2.to_vector(), dx.to_vector());

  // accumulate_dx: dx += the gradient (the residual stream's), no other change.
  Tensor prior = randn({N, C}, 5), acc = prior.clone();
  layernorm_backward(acc, Tensor(), Tensor(), r, x, w, mean, rstd, true);
  const auto p = prior.to_vector(), a = acc.to_vector(), g = dx.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(a[i], p[i] + g[i]);
}

TEST(RMSNorm, ForwardAndGradsMatchPyTorch) {
  KernelFixture f("rmsnorm");
  Tensor x = f.tensor("x"), w = f.tensor("w");
  const int64_t N = x.size(0), C = x.size(1);
  Tensor out = Tensor::empty({N, C}, DType::F32), rstd = Tensor::empty({N}, DType::F32);
  rmsnorm_forward(out, rstd, x, w, float(f.scalar("eps")));
  EXPECT_MATCHES_REF(out.to_vector(), f.vec("out"), "rmsnorm out");

  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({C}, DType::F32);
  rmsnorm_backward(dx, dw, f.tensor("dout"), x, w, rstd);
  EXPECT_MATCHES_REF(dx.to_vector(), f.vec("dx"), "rmsnorm dx");
  EXPECT_MATCHES_REF(dw.to_vector(), f.vec("dw"), "rmsnorm dw");
}

TEST(RMSNorm, BackwardMatchesFiniteDifferences) {
  const int64_t N = 4, C = 9;
  Tensor x = randn({N, C}, 5), w = randn({C}, 6), r = randn({N, C}, 7);
  Tensor out = Tensor::empty({N, C}, DType::F32), rstd = Tensor::empty({N}, DType::F32);
  auto loss = [&] {
    rmsnorm_forward(out, rstd, x, w, 1e-6f);
    return weighted_sum(out, r);
  };
  loss();
  Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({C}, DType::F32);
  rmsnorm_backward(dx, dw, r, x, w, rstd);
  EXPECT_GRAD_MATCHES(dx, numeric_grad(x, loss), "rmsnorm dx");
  EXPECT_GRAD_MATCHES(dw, numeric_grad(w, loss), "rmsnorm dw");

  // A frozen weight (undefined dw) still yields the same dx.
  Tensor dx2 = Tensor::empty({N, C}, DType::F32);
  rmsnorm_backward(dx2, Tensor(), r, x, w, rstd);
  EXPECT_EQ(dx2.to_vector(), dx.to_vector());

  // accumulate_dx: dx += the gradient.
  Tensor prior = randn({N, C}, 8), acc = prior.clone();
  rmsnorm_backward(acc, Tensor(), r, x, w, rstd, true);
  const auto p = prior.to_vector(), a = acc.to_vector(), g = dx.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(a[i], p[i] + g[i]);
}
