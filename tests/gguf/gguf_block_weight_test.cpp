// GgufBlockWeight (a base kept in GGUF blocks, dequantized row by row) vs the
// dense F32 path on the same tensor: forward and input gradient.
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

}  // namespace
}  // namespace qtrain
