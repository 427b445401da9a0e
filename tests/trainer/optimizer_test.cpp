// AdamW + gradient clipping against torch.optim.AdamW and
// torch.nn.utils.clip_grad_norm_ (tests/trainer/make_reference_values.py).
#include "trainer/optimizer.h"

#include "trainer/grad_clip.h"
#include "tests/test_util.h"

namespace qtrain {

namespace {
// Param "a" (decay 0.1) then "b" (no decay), as in the reference script.
struct TwoParams {
  ParamSet ps;
  TwoParams() {
    ps.declare("a", {5}, true, 0);
    ps.declare("b", {3}, false, 1);
    ps.allocate(Device::CPU);
    ps[0].value.copy_from(Tensor::from_vector({0.5f, -1.0f, 2.0f, 0.25f, -0.75f}, {5}));
    ps[1].value.copy_from(Tensor::from_vector({1.5f, -0.5f, 0.125f}, {3}));
  }
  // The reference's gradients for 1-based step t, stored as a sum that
  // pre_scale = 1/4 turns back into the gradient (as 1/token-count would).
  void set_grads(int t) {
    auto a = ps[0].value.to_vector();
    std::vector<float> ga = {0.3f, -0.2f, 0.1f, 0.05f, -0.4f}, gb = {-0.6f, 0.9f, 0.2f};
    for (size_t i = 0; i < ga.size(); ++i) ga[i] = 4.f * (ga[i] * float(t) + a[i] * 0.5f);
    for (auto& x : gb) x = 4.f * (x / float(t));
    ps[0].grad.copy_from(Tensor::from_vector(ga, {5}));
    ps[1].grad.copy_from(Tensor::from_vector(gb, {3}));
  }
};
}  // namespace

TEST(AdamW, MatchesTorchWithClippingAndDecayGroups) {
  TwoParams tp;
  AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  AdamW opt(tp.ps, cfg);
  const double norms[3] = {1.9605484, 2.15829492, 2.60670424};
  const std::vector<std::vector<float>> want_a = {{0.489500016f, -0.989000022f, 1.98800004f, 0.239750013f, -0.739250004f},
                                                  {0.479059041f, -0.977999926f, 1.97601604f, 0.229497641f, -0.728550375f},
                                                  {0.468590707f, -0.966994345f, 1.96409941f, 0.219243318f, -0.717824399f}};
  const std::vector<std::vector<float>> want_b = {{1.50999999f, -0.50999999f, 0.115000002f},
                                                  {1.51917875f, -0.519178808f, 0.105821185f},
                                                  {1.52751863f, -0.52751869f, 0.0974813178f}};
  for (int t = 1; t <= 3; ++t) {
    tp.set_grads(t);
    GradClip clip = clip_grad_norm(tp.ps.grads(), 0.25f, 0.5f);
    EXPECT_NEAR(clip.norm, norms[t - 1], 1e-6);
    opt.step(tp.ps, 1e-2f, clip.grad_scale);
    EXPECT_LT(testing::max_rel_err(tp.ps[0].value.to_vector(), want_a[size_t(t - 1)]), 2e-6) << "step " << t;
    EXPECT_LT(testing::max_rel_err(tp.ps[1].value.to_vector(), want_b[size_t(t - 1)]), 2e-6) << "step " << t;
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  TwoParams x, y;
  AdamW ox(x.ps, {}), oy(y.ps, {});
  for (int t = 1; t <= 2; ++t) {
    x.set_grads(t);
    ox.step(x.ps, 1e-2f);
  }
  // y takes x's params and optimizer state, then both take the same step.
  y.ps.values().copy_from(x.ps.values());
  NamedTensors state;
  for (auto& [name, t] : ox.state_tensors(x.ps)) state.emplace_back(name, t.clone());
  oy.load_state(y.ps, state, ox.steps(), "test");
  x.set_grads(3);
  y.set_grads(3);
  ox.step(x.ps, 1e-2f);
  oy.step(y.ps, 1e-2f);
  EXPECT_EQ(x.ps.values().to_vector(), y.ps.values().to_vector());
}

TEST(AdamW, LoadStateNamesMissingTensorAndBadShape) {
  TwoParams tp;
  AdamW opt(tp.ps, {});
  NamedTensors state = opt.state_tensors(tp.ps);
  state.pop_back();
  EXPECT_THROW(
      {
        try {
          opt.load_state(tp.ps, state, 1, "ckpt/optimizer.safetensors");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("ckpt/optimizer.safetensors: missing optimizer tensor 'b.exp_avg_sq'"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
  state = opt.state_tensors(tp.ps);
  state[0].second = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(opt.load_state(tp.ps, state, 1, "x"), Error);
}

TEST(GradClip, NoClipBelowMaxAndDisabledWhenZero) {
  Tensor g = Tensor::from_vector({3.f, 4.f}, {2});
  GradClip c = clip_grad_norm(g, 1.f, 10.f);
  EXPECT_DOUBLE_EQ(c.norm, 5.0);
  EXPECT_FLOAT_EQ(c.grad_scale, 1.f);
  c = clip_grad_norm(g, 0.5f, 0.f);
  EXPECT_DOUBLE_EQ(c.norm, 2.5);
  EXPECT_FLOAT_EQ(c.grad_scale, 0.5f);
  c = clip_grad_norm(g, 1.f, 1.f);
  EXPECT_NEAR(c.grad_scale, 1.f / (5.f + 1e-6f), 1e-9);
  Tensor bad = Tensor::from_vector({std::nanf(""), 1.f}, {2});
  EXPECT_FALSE(clip_grad_norm(bad, 1.f, 1.f).finite());
}

}  // namespace qtrain
