#include <gtest/gtest.h>

#include <cmath>

#include "kernels/error.h"
#include "models/synthetic_model.h"

namespace qtrain {

TEST(SyntheticModel, Llama70bShapesFromItsConfig) {
  LoadedModel m = load_synthetic_model("random:llama-70b");
  EXPECT_EQ(m.config.n_layer, 80);
  EXPECT_EQ(m.config.head_dim, 128);
  EXPECT_EQ(m.weights->shape("model.layers.79.self_attn.k_proj.weight"), (Shape{1024, 8192}));
  EXPECT_EQ(m.weights->shape("model.layers.0.mlp.down_proj.weight"), (Shape{8192, 28672}));
  EXPECT_EQ(m.weights->shape("lm_head.weight"), (Shape{32000, 8192}));
  EXPECT_FALSE(m.weights->has("model.layers.0.self_attn.q_proj.bias"));
}

TEST(SyntheticModel, ValuesAreDeterministicWithStd002AndNormsOne) {
  LoadedModel m = load_synthetic_model("random:smollm2-135m");
  Tensor a = m.weights->load_f32("model.layers.3.mlp.up_proj.weight");
  Tensor b = m.weights->load_f32("model.layers.3.mlp.up_proj.weight");
  Tensor c = m.weights->load_f32("model.layers.4.mlp.up_proj.weight");
  ASSERT_EQ(a.shape(), (Shape{1536, 576}));
  double s2 = 0, mean = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(a.f32()[i], b.f32()[i]);
    s2 += double(a.f32()[i]) * a.f32()[i];
    mean += a.f32()[i];
  }
  EXPECT_NEAR(std::sqrt(s2 / double(a.numel())), 0.02, 2e-4);
  EXPECT_NEAR(mean / double(a.numel()), 0.0, 2e-4);
  EXPECT_NE(a.f32()[0], c.f32()[0]);  // another tensor, other values
  Tensor n = m.weights->load_f32("model.layers.0.input_layernorm.weight");
  EXPECT_EQ(n.f32()[575], 1.f);
}

TEST(SyntheticModel, UnknownShapeNamesTheKnownOnes) {
  try {
    load_synthetic_model("random:llama-3b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama-70b"), std::string::npos);
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
  }
}

}  // namespace qtrain
