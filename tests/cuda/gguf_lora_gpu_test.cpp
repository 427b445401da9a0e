// LoRA on a GGUF base kept in its blocks on the GPU (blocks dequantized into a
// BF16 scratch per product) vs the CPU reference of LoRA on the same base
// dequantized on load, within BF16 tolerance; and the dequantization kernel
// itself against the CPU reference, bit for bit in F32.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/gguf_dequant.h"
#include "models/gguf_file.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/gguf_lora_fixture.h"

namespace qtrain::testing {
namespace {

TEST(GpuGgufLora, MatchesCpuDequantizedOnLoad) {
  QT_SKIP_WITHOUT_GPU();
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(t));
    const std::string path = tiny_llama_gguf(t);
    LossAndGrads gpu = gguf_lora_step(path, "gguf-lora", Device::CUDA), cpu = gguf_lora_step(path, "lora", Device::CPU);
    EXPECT_NEAR(gpu.loss, cpu.loss, 2e-2 * cpu.loss);
    EXPECT_LT(norm_rel_err(gpu.grads, cpu.grads), 5e-2);
    std::filesystem::remove(path);
  }
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

}  // namespace
}  // namespace qtrain::testing
