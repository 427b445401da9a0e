// LoRA on a GGUF base kept in its blocks on the GPU (blocks dequantized into a
// BF16 scratch per product) vs the CPU reference of LoRA on the same base
// dequantized on load, within BF16 tolerance; and the dequantization kernel
// itself against the CPU reference, bit for bit in F32; the decode product
// straight from the blocks (matmul_gguf) against the CPU reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/gguf_dequant.h"
#include "kernels/matmul.h"
#include "kernels/dtype.h"
#include "models/gguf_file.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/gguf_lora_fixture.h"

namespace qtrain::testing {
namespace {

TEST(GpuGgufLora, MatchesCpuDequantizedOnLoad) {
  QT_SKIP_WITHOUT_GPU();
  expect_gguf_lora_matches_dense(Device::CUDA, 2e-2, 5e-2);
}

TEST(CudaGgufDequant, BitIdenticalToCpu) {
  QT_SKIP_WITHOUT_GPU();
  GgufFile f(fixture("gguf/blocks.gguf"));  // one [2, 512] tensor per ggml type
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F16}) {
    SCOPED_TRACE(ggml_type_name(t));
    const GgufTensorInfo* q = f.find_tensor(ggml_type_name(t));
    ASSERT_TRUE(q);
    const int64_t cols = q->ne[0], rows = q->numel() / cols;
    Tensor blocks = Tensor::empty({int64_t(rows * ggml_row_size(t, cols))}, DType::U8);
    std::memcpy(blocks.raw(), f.tensor_data(*q), blocks.nbytes());
    Tensor cpu = Tensor::empty({rows, cols}, DType::F32), gpu = Tensor::empty({rows, cols}, DType::F32, Device::CUDA);
    dequantize_gguf(cpu, blocks, t);
    dequantize_gguf(gpu, blocks.to(Device::CUDA), t);
    EXPECT_EQ(gpu.to_vector(), cpu.to_vector());
  }
}


// Random blocks of `type` for a [rows, cols] weight: random codes, fp16 scales of
// either sign (and Q4_1 minimums), as ggml lays them out.
Tensor random_blocks(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  const size_t row_bytes = ggml_row_size(type, cols), block_bytes = row_bytes / size_t(cols / 32);
  Tensor t = Tensor::empty({int64_t(size_t(rows) * row_bytes)}, DType::U8);
  auto* p = static_cast<uint8_t*>(t.raw());
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f), minimum(-0.1f, 0.1f);
  for (int64_t b = 0; b < rows * cols / 32; ++b) {
    uint8_t* blk = p + size_t(b) * block_bytes;
    for (size_t i = 0; i < block_bytes; ++i) blk[i] = uint8_t(rng());
    const uint16_t d = f32_to_f16((rng() & 1 ? -1.f : 1.f) * scale(rng));
    std::memcpy(blk, &d, 2);
    if (type == GgmlType::Q4_1) {
      const uint16_t m = f32_to_f16(minimum(rng));
      std::memcpy(blk + 2, &m, 2);
    }
  }
  return t;
}

TEST(CudaGgufGemv, MatchesCpuReference) {
  QT_SKIP_WITHOUT_GPU();
  // SmolLM2's 576/1536 columns (an even and an odd number of 32-blocks per 32 lanes: 18, 48), a
  // LLaMA row of 4096, and row counts that leave the last block of warps partly empty.
  const struct {
    int64_t rows, cols;
  } shapes[] = {{257, 576}, {1000, 1536}, {64, 4096}, {9, 32}};
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0})
    for (const auto& sh : shapes)
      for (int64_t m : {1, 3, 8}) {
        SCOPED_TRACE(std::string(ggml_type_name(t)) + " " + std::to_string(sh.rows) + "x" + std::to_string(sh.cols) +
                     " M " + std::to_string(m));
        const Tensor blocks = random_blocks(t, sh.rows, sh.cols, uint64_t(sh.rows * 7 + m));
        const Pair x = randn_pair({m, sh.cols}, uint64_t(m), DType::BF16);
        ASSERT_TRUE(gemv_gguf_supported(x.gpu, t));
        Tensor cpu = Tensor::empty({m, sh.rows}, DType::F32), gpu = Tensor::empty({m, sh.rows}, DType::F32, Device::CUDA);
        matmul_gguf(cpu, x.cpu, blocks, t);
        matmul_gguf(gpu, x.gpu, blocks.to(Device::CUDA), t);
        // Only the summation order differs (per block, then scaled): F32 rounding.
        EXPECT_CLOSE(gpu, cpu, 1e-5);
        // Each output row is its own weight row: a swapped or skipped row shows at once.
        const std::vector<float> g = gpu.to_vector(), c = cpu.to_vector();
        for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(g[i], c[i], 1e-4 * (1.0 + std::fabs(c[i]))) << "output " << i;
      }
  // The BF16 output the decode step writes: the same values rounded.
  const Tensor blocks = random_blocks(GgmlType::Q4_1, 300, 576, 3);
  const Pair x = randn_pair({2, 576}, 4, DType::BF16);
  Tensor cpu = Tensor::empty({2, 300}, DType::F32), gpu = Tensor::empty({2, 300}, DType::BF16, Device::CUDA);
  matmul_gguf(cpu, x.cpu, blocks, GgmlType::Q4_1);
  matmul_gguf(gpu, x.gpu, blocks.to(Device::CUDA), GgmlType::Q4_1);
  EXPECT_CLOSE(gpu.to(Device::CPU, DType::F32), cpu, kBf16Tol);
}

// A LoRA layer on a GGUF base at decode shape (2 rows) takes the block product, and its output
// equals the training-shape path's (dequantize + cuBLASLt) within BF16 rounding.
TEST(CudaGgufGemv, DecodeRowsThroughTheBaseWeight) {
  QT_SKIP_WITHOUT_GPU();
  const std::string path = tiny_llama_gguf(GgmlType::Q4_0);
  LoadedModel lm = load_gguf_model(path);
  GgufBlockWeight w(*dynamic_cast<const GgufWeightSource*>(lm.weights.get()), "model.layers.0.mlp.down_proj.weight");
  const int64_t in = w.in_features(), out = w.out_features();
  const Pair x = randn_pair({2, in}, 9, DType::BF16);
  ASSERT_TRUE(gemv_gguf_supported(x.gpu, w.type()));
  Tensor y = Tensor::empty({2, out}, DType::BF16, Device::CUDA);
  w.forward(y, x.gpu);
  Tensor ref = Tensor::empty({2, out}, DType::F32);
  gemm(ref, x.cpu, w.dense_f32(), false, true);
  EXPECT_CLOSE(y.to(Device::CPU, DType::F32), ref, kBf16Tol);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace qtrain::testing
