// The asymmetric tiled 4-bit dequantization (QA-BLoRA's base) on the GPU
// against its CPU reference, and a QA-BLoRA model's loss and gradients on the
// GPU against the CPU.
#include "kernels/asym4.h"

#include "models/asym4_weight.h"
#include "models/model.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

TEST(CudaAsym4, DequantizeMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t out = 96, in = 160;
  Asym4Weight q(randn({out, in}, 1), 8, 4, "w");
  const Asym4Tiles& t = q.tiles();
  Tensor dc = q.codes().to(Device::CUDA), ds = q.scale().to(Device::CUDA), dz = q.zero().to(Device::CUDA);
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor ref = Tensor::empty({40, in}, DType::F32);
    asym4_dequantize(ref, q.codes(), q.scale(), q.zero(), t, 24);
    Tensor gpu = Tensor::empty({40, in}, dt, Device::CUDA);
    asym4_dequantize(gpu, dc, ds, dz, t, 24);
    EXPECT_CLOSE(gpu, round_to(ref, dt), dt == DType::F32 ? 1e-6 : 1e-3);
  }
}

TEST(CudaAsym4, QABloraModelMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto run = [&](Device dev) {
    ModelOptions opt;
    opt.device = dev;
    opt.method = "qablora";
    auto m = Model::create(lm.config, *lm.weights, opt);
    uint64_t seed = 5;
    for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));
    return train_step_grads(*m, r);
  };
  LossAndGrads c = run(Device::CPU), g = run(Device::CUDA);
  EXPECT_NEAR(g.loss, c.loss, 2e-2 * c.loss);
  EXPECT_LT(norm_rel_err(g.grads, c.grads), 5e-2);
}

}  // namespace
}  // namespace qtrain::testing
