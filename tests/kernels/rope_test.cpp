#include "kernels/rope.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(Rope, ForwardMatchesHuggingFace) {
  KernelFixture f("rope");
  for (int i : {0, 1}) {
    Tensor x = f.tensor("x" + std::to_string(i));
    rope_forward(x, float(f.scalar("theta" + std::to_string(i))));
    EXPECT_MATCHES_REF(x.to_vector(), f.vec("out" + std::to_string(i)), "rope case " + std::to_string(i));
  }
}

TEST(Rope, BackwardMatchesFiniteDifferencesAndInvertsForward) {
  const Shape s{2, 5, 3, 6};
  Tensor x = randn(s, 1), r = randn(s, 2), out = Tensor::empty(s, DType::F32);
  auto loss = [&] {
    out.copy_from(x);
    rope_forward(out, 500.f);
    return weighted_sum(out, r);
  };
  Tensor dx = r.clone();
  rope_backward(dx, 500.f);
  EXPECT_GRAD_MATCHES(dx, numeric_grad(x, loss), "rope dx");

  // Rotation is orthogonal: backward undoes forward.
  Tensor y = x.clone();
  rope_forward(y, 500.f);
  rope_backward(y, 500.f);
  EXPECT_LT(max_rel_err(y.to_vector(), x.to_vector(), 1.0), 1e-6);
  // Position 0 is not rotated.
  loss();
  auto xo = x.to_vector(), o = out.to_vector();
  for (int64_t i = 0; i < 3 * 6; ++i) EXPECT_EQ(o[size_t(i)], xo[size_t(i)]);
}
