#include "kernels/device.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaDevice, ReportsAndRoundTrips) {
  QT_SKIP_WITHOUT_GPU();
  EXPECT_TRUE(built_with_cuda());
  EXPECT_FALSE(cuda_device_name().empty());
  Tensor h = randn({1000}, 1);
  Tensor g = h.to(Device::CUDA);
  Tensor g2 = g.clone();  // device -> device
  EXPECT_EQ(vec(g2), vec(h));
  g2.zero_();
  EXPECT_EQ(vec(g2), std::vector<float>(1000, 0.f));
}

// An out-of-memory is its own kind, so that train can say what to change (exit 1, as a runtime error).
TEST(CudaDevice, ImpossibleAllocationIsAnOutOfMemoryError) {
  QT_SKIP_WITHOUT_GPU();
  try {
    Tensor t = Tensor::empty({int64_t(1) << 50}, DType::F32, Device::CUDA);  // 4 PiB
    FAIL() << "allocation succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory);
    EXPECT_NE(std::string(e.what()).find("cudaMalloc"), std::string::npos) << e.what();
  }
  // The device stays usable afterwards.
  Tensor ok = Tensor::zeros({16}, DType::F32, Device::CUDA);
  EXPECT_EQ(vec(ok), std::vector<float>(16, 0.f));
}

}  // namespace
}  // namespace qtrain::testing
