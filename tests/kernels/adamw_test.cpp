#include "kernels/adamw.h"

#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(AdamW, ThreeStepsWithWeightDecayMatchTorch) {
  KernelFixture f("adamw");
  Tensor p = f.tensor("p0");
  Tensor m = Tensor::zeros(p.shape(), DType::F32), v = Tensor::zeros(p.shape(), DType::F32);
  AdamWParams hp;
  hp.lr = float(f.scalar("lr"));
  hp.weight_decay = float(f.scalar("weight_decay"));
  hp.beta1 = float(f.scalar("beta1"));
  hp.beta2 = float(f.scalar("beta2"));
  hp.eps = float(f.scalar("eps"));
  for (int step = 1; step <= 3; ++step) {
    const std::string s = std::to_string(step);
    hp.step = step;
    adamw_step(p, f.tensor("g" + s), m, v, hp);
    EXPECT_MATCHES_REF(m.to_vector(), f.vec("m" + s), "adamw m step " + s);
    EXPECT_MATCHES_REF(v.to_vector(), f.vec("v" + s), "adamw v step " + s);
    // p moves by ~lr per step: compare the update, not just p (which hides it).
    EXPECT_LT(max_rel_err(p.to_vector(), f.vec("p" + s), 1.0), 1e-6) << "adamw p step " + s;
  }
}

TEST(AdamW, GradScaleMultipliesTheGradient) {
  Tensor p1 = randn({100}, 1), g = randn({100}, 2);
  Tensor p2 = p1.clone(), g2 = g.clone();
  for (int64_t i = 0; i < 100; ++i) g2.f32()[i] *= 0.5f;
  Tensor m1 = Tensor::zeros({100}, DType::F32), v1 = Tensor::zeros({100}, DType::F32);
  Tensor m2 = Tensor::zeros({100}, DType::F32), v2 = Tensor::zeros({100}, DType::F32);
  AdamWParams hp;
  hp.weight_decay = 0.01f;
  hp.grad_scale = 0.5f;
  adamw_step(p1, g, m1, v1, hp);
  hp.grad_scale = 1.f;
  adamw_step(p2, g2, m2, v2, hp);
  EXPECT_EQ(p1.to_vector(), p2.to_vector());
  EXPECT_EQ(v1.to_vector(), v2.to_vector());
}
