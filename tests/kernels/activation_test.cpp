#include "kernels/activation.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(Gelu, ForwardAndGradMatchPyTorch) {
  KernelFixture f("gelu");
  Tensor x = f.tensor("x"), out = Tensor::empty(x.shape(), DType::F32), dx = Tensor::empty(x.shape(), DType::F32);
  gelu_forward(out, x);
  EXPECT_MATCHES_REF(out.to_vector(), f.vec("out"), "gelu out");
  gelu_backward(dx, f.tensor("dout"), x);
  EXPECT_MATCHES_REF(dx.to_vector(), f.vec("dx"), "gelu dx");
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  Tensor x = randn({33}, 1, 2.f), r = randn({33}, 2), out = Tensor::empty({33}, DType::F32);
  auto loss = [&] {
    gelu_forward(out, x);
    return weighted_sum(out, r);
  };
  Tensor dx = Tensor::empty({33}, DType::F32);
  gelu_backward(dx, r, x);
  auto numeric = numeric_grad(x, loss);
  EXPECT_GRAD_MATCHES(dx, numeric, "gelu dx");
  // The check has teeth: a gradient 3% off fails it.
  {
    auto wrong = dx.to_vector();
    for (float& v : wrong) v *= 1.03f;
    EXPECT_GT(norm_rel_err(wrong, numeric), kGradTol);
  }
}

TEST(SwiGLU, ForwardAndGradsMatchPyTorch) {
  KernelFixture f("swiglu");
  Tensor g = f.tensor("gate"), u = f.tensor("up");
  Tensor out = Tensor::empty(g.shape(), DType::F32);
  swiglu_forward(out, g, u);
  EXPECT_MATCHES_REF(out.to_vector(), f.vec("out"), "swiglu out");
  Tensor dg = Tensor::empty(g.shape(), DType::F32), du = Tensor::empty(g.shape(), DType::F32);
  swiglu_backward(dg, du, f.tensor("dout"), g, u);
  EXPECT_MATCHES_REF(dg.to_vector(), f.vec("dgate"), "swiglu dgate");
  EXPECT_MATCHES_REF(du.to_vector(), f.vec("dup"), "swiglu dup");
}

TEST(SwiGLU, BackwardMatchesFiniteDifferences) {
  Tensor g = randn({3, 7}, 3, 2.f), u = randn({3, 7}, 4), r = randn({3, 7}, 5);
  Tensor out = Tensor::empty({3, 7}, DType::F32);
  auto loss = [&] {
    swiglu_forward(out, g, u);
    return weighted_sum(out, r);
  };
  Tensor dg = Tensor::empty({3, 7}, DType::F32), du = Tensor::empty({3, 7}, DType::F32);
  swiglu_backward(dg, du, r, g, u);
  EXPECT_GRAD_MATCHES(dg, numeric_grad(g, loss), "swiglu dgate");
  EXPECT_GRAD_MATCHES(du, numeric_grad(u, loss), "swiglu dup");
}
