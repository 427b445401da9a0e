#include "kernels/adamw.h"

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

}  // namespace
}  // namespace qtrain::testing
