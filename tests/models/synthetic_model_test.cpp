#include <gtest/gtest.h>

#include <cmath>

#include "kernels/error.h"
#include "models/model.h"
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

namespace qtrain {

// The trainable-parameter count is peft's for the same configuration
// (tests/fixtures/peft_trainable_counts.py; GPT2LMHeadModel, LoraConfig r=8):
// GPT-2 (124M) on c_attn + c_proj (peft matches attn.c_proj and mlp.c_proj)
// gives 811,008, the number issue #7's seed reports.
TEST(SyntheticModel, Gpt2LoraTrainableCountIsPefts) {
  LoadedModel lm = load_synthetic_model("random:gpt2");
  ModelOptions opt;
  opt.method = "lora";
  opt.lora.r = 8;
  opt.lora.alpha = 16;
  opt.targets = {"c_attn", "c_proj"};
  auto m = Model::create(lm.config, *lm.weights, opt);
  EXPECT_EQ(m->trainable_params(), 811008);
  EXPECT_EQ(m->total_params(), 124439808 + 811008);  // GPT-2's 124,439,808 + the adapters
}

}  // namespace qtrain
