#include "kernels/adamw.h"
#include "kernels/elementwise.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaAdamW, ThreeStepsMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t n = 100001;
  Pair p = randn_pair({n}, 1, DType::F32);
  Pair m = pair(Tensor::zeros({n}, DType::F32), DType::F32), v = pair(Tensor::zeros({n}, DType::F32), DType::F32);
  AdamWParams hp;
  hp.lr = 1e-3f;
  hp.weight_decay = 0.1f;
  hp.grad_scale = 0.5f;
  for (int step = 1; step <= 3; ++step) {
    Pair g = randn_pair({n}, 10 + step, DType::F32);
    hp.step = step;
    adamw_step(p.cpu, g.cpu, m.cpu, v.cpu, hp);
    adamw_step(p.gpu, g.gpu, m.gpu, v.gpu, hp);
  }
  EXPECT_CLOSE(p.gpu, p.cpu, kF32Tol);
  EXPECT_CLOSE(m.gpu, m.cpu, kF32Tol);
  EXPECT_CLOSE(v.gpu, v.cpu, kF32Tol);
}

// The BF16 copy written in the same pass (a full fine-tune's compute copy): exactly the updated
// values rounded, and the F32 update unchanged by writing it.
TEST(CudaAdamW, WritesTheRoundedCopy) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t n = 4099;
  Tensor p = randn_pair({n}, 2, DType::F32).gpu, g = randn_pair({n}, 3, DType::F32).gpu;
  Tensor m = Tensor::zeros({n}, DType::F32, Device::CUDA), v = m.clone();
  Tensor p2 = p.clone(), m2 = m.clone(), v2 = m.clone();
  Tensor copy = Tensor::zeros({n}, DType::BF16, Device::CUDA), rounded = copy.clone();
  AdamWParams hp;
  hp.lr = 1e-2f;
  adamw_step(p, g, m, v, hp, copy);
  adamw_step(p2, g, m2, v2, hp);
  EXPECT_EQ(vec(p), vec(p2));
  convert(rounded, p);
  EXPECT_EQ(vec(copy), vec(rounded));
}

}  // namespace
}  // namespace qtrain::testing
