// --method gguf-lora: LoRA on a GGUF base kept in its blocks gives the loss and
// adapter gradients of LoRA on the same base dequantized on load (--method
// lora on the same file), on Q4_0 and Q8_0 bases written from the tiny LLaMA
// fixture. (The GPU twin: tests/cuda/gguf_lora_gpu_test.cpp.)
#include <gtest/gtest.h>

#include "tests/gguf_lora_fixture.h"

namespace qtrain::testing {
namespace {

TEST(GgufLora, BlocksKeptEqualDequantizedOnLoad) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(t));
    const std::string path = tiny_llama_gguf(t);
    LossAndGrads kept = gguf_lora_step(path, "gguf-lora", Device::CPU), dense = gguf_lora_step(path, "lora", Device::CPU);
    EXPECT_NEAR(kept.loss, dense.loss, 1e-5 * dense.loss);
    EXPECT_LT(norm_rel_err(kept.grads, dense.grads), 1e-5);
    std::filesystem::remove(path);
  }
}

TEST(GgufLora, RefusesANonGgufBase) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions opt;
  opt.method = "gguf-lora";
  EXPECT_THROW(Model::create(lm.config, *lm.weights, opt), Error);
}

}  // namespace
}  // namespace qtrain::testing
