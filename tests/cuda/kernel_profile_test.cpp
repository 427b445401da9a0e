#include <gtest/gtest.h>

#include "kernels/kernel_profile.h"
#include "kernels/matmul.h"
#include "tests/cuda/cuda_test_util.h"

namespace qtrain {
using namespace testing;

// CUPTI sees the gemms we launch, with one record per call.
TEST(KernelProfile, RecordsGemmCalls) {
  if (!cuda_available()) GTEST_SKIP() << "skipped: no GPU";
  Tensor a = randn({256, 128}, 1).to(Device::CUDA, DType::BF16), b = randn({128, 64}, 2).to(Device::CUDA, DType::BF16);
  Tensor c = Tensor::empty({256, 64}, DType::F32, Device::CUDA);
  gemm(c, a, b, false, false);  // plan + autotuning outside the profile
  cuda_sync();
  if (std::string why = kernel_profile_start(); !why.empty()) GTEST_SKIP() << why;
  for (int i = 0; i < 5; ++i) gemm(c, a, b, false, false), cuda_sync();
  auto ks = kernel_profile_stop();
  int64_t gemm_calls = 0;
  for (auto& k : ks) {
    if (k.klass == "gemm") gemm_calls += k.calls;
    // Calls one after another (a sync between them): each adds its whole time to the timeline.
    EXPECT_GT(k.advance_ms, 0) << k.name;
    EXPECT_NEAR(k.advance_ms, k.total_ms, 1e-9 + 1e-6 * k.total_ms) << k.name;
  }
  EXPECT_GE(gemm_calls, 5);
  EXPECT_TRUE(kernel_profile_stop().empty());  // stopped: nothing more
}

}  // namespace qtrain
