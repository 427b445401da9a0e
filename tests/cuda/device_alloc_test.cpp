// The caching allocator: a training step's allocations are served from the
// cache after the first step (no cudaMalloc inside the step), and the peak
// counts what was in use at once.
#include "kernels/device.h"
#include "tests/test_util.h"

using namespace qtrain;

TEST(CudaAllocator, ReusesFreedBlocksAndTracksPeak) {
  QT_SKIP_WITHOUT_GPU();
  auto step = [] {
    Tensor a = Tensor::empty({1000, 1000}, DType::BF16, Device::CUDA);
    Tensor b = Tensor::empty({4096, 7}, DType::F32, Device::CUDA);
    Tensor c = Tensor::empty({3}, DType::I32, Device::CUDA);
    return a.nbytes() + b.nbytes() + c.nbytes();
  };
  size_t want = step();
  CudaMemoryStats after_first = cuda_memory_stats();
  for (int i = 0; i < 20; ++i) step();
  CudaMemoryStats after = cuda_memory_stats();
  EXPECT_EQ(after.reserved, after_first.reserved) << "a repeated step must not reserve more memory";
  EXPECT_EQ(after.in_use, after_first.in_use);
  EXPECT_GE(after.peak, after_first.in_use + want);
  // A freed block really is reused: the same address comes back.
  void* p1 = Tensor::empty({12345}, DType::F32, Device::CUDA).raw();
  void* p2 = Tensor::empty({12345}, DType::F32, Device::CUDA).raw();
  EXPECT_EQ(p1, p2);
}

TEST(CudaAllocator, ReleaseCachedGivesBackOnlyFreeBlocks) {
  QT_SKIP_WITHOUT_GPU();
  cuda_release_cached();
  Tensor kept = Tensor::empty({3 << 20}, DType::F32, Device::CUDA);  // 12 MiB, stays in use
  const CudaMemoryStats before = cuda_memory_stats();
  { Tensor setup = Tensor::empty({17 << 20}, DType::F32, Device::CUDA); }  // a 68 MiB setup buffer, freed: cached
  EXPECT_EQ(cuda_memory_stats().reserved, before.reserved + cuda_block_bytes(size_t(17 << 20) * 4));
  const size_t freed = cuda_release_cached();
  EXPECT_EQ(freed, cuda_block_bytes(size_t(17 << 20) * 4));
  const CudaMemoryStats after = cuda_memory_stats();
  EXPECT_EQ(after.reserved, before.reserved) << "the cached block goes back, the live one stays";
  EXPECT_EQ(after.in_use, before.in_use);
  EXPECT_EQ(cuda_release_cached(), 0u);
  // The live tensor is intact and the allocator still serves the size it gave back.
  kept.copy_from(Tensor::zeros({3 << 20}, DType::F32));
  Tensor again = Tensor::empty({17 << 20}, DType::F32, Device::CUDA);
  EXPECT_TRUE(again.defined());
}
