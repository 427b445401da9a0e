// BitNet's quantizers (kernels/ternary.h) on the GPU against their CPU
// references, and a BitNet model's loss and gradients on the GPU against the
// CPU backend at three points of the lambda warmup.
#include "kernels/ternary.h"

#include "models/model.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

TEST(CudaTernary, QuantizersMatchTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (float lam : {0.f, 0.3f, 1.f}) {
    // F32 in and out: the same arithmetic, so the same levels (sums in double on both).
    Pair w = randn_pair({257, 130}, 1, DType::F32, 0.02f), wq = randn_pair({257, 130}, 2, DType::F32);
    ternary_fake_quant(wq.cpu, w.cpu, lam);
    ternary_fake_quant(wq.gpu, w.gpu, lam);
    EXPECT_CLOSE(wq.gpu, wq.cpu, 1e-6);
    Pair x = randn_pair({37, 300}, 3, DType::F32, 3.f), xq = randn_pair({37, 300}, 4, DType::F32);
    int8_act_fake_quant(xq.cpu, x.cpu, lam);
    int8_act_fake_quant(xq.gpu, x.gpu, lam);
    EXPECT_CLOSE(xq.gpu, xq.cpu, 1e-6);
    // BF16 activations, as the CUDA backend feeds them
    Pair xb = randn_pair({37, 300}, 5, DType::BF16, 3.f), xqb = randn_pair({37, 300}, 6, DType::BF16);
    int8_act_fake_quant(xqb.cpu, xb.cpu, lam);
    int8_act_fake_quant(xqb.gpu, xb.gpu, lam);
    EXPECT_CLOSE(xqb.gpu, xqb.cpu, kBf16Tol);
  }
}

TEST(CudaTernary, BitNetModelMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    for (int64_t step : {0, 10, 40}) {
      auto run = [&](Device dev, std::vector<std::vector<float>>* grads) {
        ModelOptions o;
        o.device = dev;
        o.method = "bitnet";
        o.bitnet_warmup = 20;
        auto m = Model::create(lm.config, *lm.weights, o);
        m->set_step(step);
        LossSum s = m->forward(r.batch(), float(1.0 / (r.B * (r.T - 1))));
        m->backward();
        for (auto& p : m->params().params()) grads->push_back(p.grad.to_vector());
        return s.sum / double(s.count);
      };
      std::vector<std::vector<float>> gc, gg;
      const double lc = run(Device::CPU, &gc), lg = run(Device::CUDA, &gg);
      EXPECT_NEAR(lg, lc, 2e-2 * lc) << name << " step " << step;
      ASSERT_EQ(gc.size(), gg.size());
      for (size_t i = 0; i < gc.size(); ++i) EXPECT_LT(norm_rel_err(gg[i], gc[i]), 5e-2) << name << " " << i;
    }
  }
}

}  // namespace
}  // namespace qtrain::testing
