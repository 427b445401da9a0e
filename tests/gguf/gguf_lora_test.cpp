// --method gguf-lora: LoRA on a GGUF base kept in its blocks gives the loss and
// adapter gradients of LoRA on the same base dequantized on load (--method
// lora on the same file), on Q4_0 and Q8_0 bases written from the tiny LLaMA
// fixture. (The GPU twin: tests/cuda/gguf_lora_gpu_test.cpp.)
#include <gtest/gtest.h>

#include "tests/gguf_lora_fixture.h"

namespace qtrain::testing {
namespace {

TEST(GgufLora, BlocksKeptEqualDequantizedOnLoad) { expect_gguf_lora_matches_dense(Device::CPU, 1e-5, 1e-5); }

TEST(GgufLora, RefusesANonGgufBase) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions opt;
  opt.method = "gguf-lora";
  EXPECT_THROW(Model::create(lm.config, *lm.weights, opt), Error);
}

}  // namespace
}  // namespace qtrain::testing
