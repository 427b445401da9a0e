// GgufBlockWeight (a base kept in GGUF blocks, dequantized row by row) vs the
// dense F32 path on the same tensor: forward and input gradient; the decode
// product's reference (matmul_gguf on the CPU) against the dense product.
#include <cstring>

#include "kernels/gguf_dequant.h"
#include "kernels/matmul.h"
#include "models/gguf_block_weight.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

TEST(GgufBlockWeight, MatchesDenseOnPermutedQ8_0) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  auto& src = dynamic_cast<GgufWeightSource&>(*m.weights);
  for (const char* name : {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
                           "model.layers.1.self_attn.o_proj.weight"}) {
    SCOPED_TRACE(name);
    GgufBlockWeight q(src, name);
    Tensor w = src.load_f32(name);
    EXPECT_EQ(q.dense_f32().to_vector(), w.to_vector());
    const int64_t in = q.in_features(), out = q.out_features(), n = 5;
    ASSERT_EQ(w.shape(), (Shape{out, in}));
    Tensor x = testing::randn({n, in}, 11), y = Tensor::empty({n, out}, DType::F32),
           y_ref = Tensor::empty({n, out}, DType::F32);
    q.forward(y, x);
    gemm(y_ref, x, w, false, true);
    EXPECT_LT(testing::norm_rel_err(y.to_vector(), y_ref.to_vector()), 1e-6);

    Tensor dy = testing::randn({n, out}, 12);
    Tensor dx = testing::randn({n, in}, 13), dx_ref = dx.clone();
    q.backward_input(dx, dy, 1.f);  // accumulate
    gemm(dx_ref, dy, w, false, false, 1.f, 1.f);
    EXPECT_LT(testing::norm_rel_err(dx.to_vector(), dx_ref.to_vector()), 1e-6);
  }
}


// matmul_gguf's CPU reference is the product with the dequantized weight (its CUDA twin is
// checked against it in tests/cuda/gguf_lora_gpu_test.cpp), and refuses operands that do not fit.
TEST(MatmulGguf, ReferenceIsTheDenseProduct) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  auto& src = dynamic_cast<GgufWeightSource&>(*m.weights);
  const char* name = "model.layers.1.mlp.down_proj.weight";
  const GgufRawTensor raw = src.raw(name);
  Tensor blocks = Tensor::empty({int64_t(raw.rows * raw.row_bytes)}, DType::U8);
  for (int64_t r = 0; r < raw.rows; ++r)
    std::memcpy(static_cast<uint8_t*>(blocks.raw()) + size_t(r) * raw.row_bytes, raw.row(r), raw.row_bytes);
  Tensor w = src.load_f32(name);
  const int64_t out = w.size(0), in = w.size(1);
  for (int64_t n : {1, 3}) {
    Tensor x = testing::randn({n, in}, 21), y = Tensor::empty({n, out}, DType::F32), y_ref = Tensor::empty({n, out}, DType::F32);
    matmul_gguf(y, x, blocks, raw.type);
    gemm(y_ref, x, w, false, true);
    EXPECT_EQ(y.to_vector(), y_ref.to_vector());
  }
  Tensor x = testing::randn({2, in}, 22);
  Tensor wrong_y = Tensor::empty({2, out + 1}, DType::F32);
  EXPECT_THROW(matmul_gguf(wrong_y, x, blocks, raw.type), Error);
  Tensor short_x = testing::randn({2, in - 32}, 23), y = Tensor::empty({2, out}, DType::F32);
  EXPECT_THROW(matmul_gguf(y, short_x, blocks, raw.type), Error);
  EXPECT_FALSE(gemv_gguf_supported(x, raw.type));  // a host x never takes the GPU product
}

}  // namespace
}  // namespace qtrain
