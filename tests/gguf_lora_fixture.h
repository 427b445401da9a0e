// LoRA on a GGUF base kept in its blocks vs dequantized on load: the tiny
// LLaMA fixture written as a GGUF of one block type, and one training step's
// loss and adapter gradients under a method. Shared by the CPU test
// (tests/gguf/gguf_lora_test.cpp) and the GPU one (tests/cuda).
#pragma once
#include <unistd.h>

#include <filesystem>

#include "models/gguf_block_weight.h"
#include "models/gguf_export.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {

namespace fs = std::filesystem;

// The tiny LLaMA fixture written as a GGUF with every 2-D weight in `type`.
inline std::string tiny_llama_gguf(GgmlType type) {
  const std::string path = (fs::temp_directory_path() / ("qtrain-tiny-llama-" + std::string(ggml_type_name(type)) + "-" +
                                                           std::to_string(::getpid()) + ".gguf")).string();
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions opt;
  opt.targets = {};
  auto m = Model::create(lm.config, *lm.weights, opt);
  TokenizerSource tok;
  for (int i = 0; i < lm.config.vocab_size; ++i) tok.tokens.push_back("t" + std::to_string(i));
  export_gguf_model(path, lm.config, tok, m->hf_state_dict(false), type);
  return path;
}

inline LossAndGrads gguf_lora_step(const std::string& gguf, const std::string& method, Device dev) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_gguf_model(gguf);
  ModelOptions opt;
  opt.device = dev;
  opt.method = method;
  auto m = Model::create(lm.config, *lm.weights, opt);
  if (method == "gguf-lora") {  // the base really is kept in blocks
    size_t blocks = 0;
    for (Linear* lin : m->linears()) blocks += dynamic_cast<const GgufBlockWeight*>(&lin->base()) != nullptr;
    EXPECT_EQ(blocks, m->linears().size());
  }
  uint64_t seed = 5;
  for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));
  return train_step_grads(*m, r);
}

// gguf-lora on dev (the base kept in its blocks) against lora on the CPU (the
// same file dequantized on load), on Q4_0 and Q8_0 bases: the losses within
// loss_tol relative, the gradients within grad_tol (norm_rel_err).
inline void expect_gguf_lora_matches_dense(Device dev, double loss_tol, double grad_tol) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(t));
    const std::string path = tiny_llama_gguf(t);
    LossAndGrads kept = gguf_lora_step(path, "gguf-lora", dev), dense = gguf_lora_step(path, "lora", Device::CPU);
    EXPECT_NEAR(kept.loss, dense.loss, loss_tol * dense.loss);
    EXPECT_LT(norm_rel_err(kept.grads, dense.grads), grad_tol);
    std::filesystem::remove(path);
  }
}

}  // namespace qtrain::testing
