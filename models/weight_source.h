// Where base weights come from. Loaders (safetensors, GGUF) implement this and
// present tensors under HF names ("model.layers.0.self_attn.q_proj.weight",
// GPT-2's "h.0.attn.c_attn.weight", without any "transformer." prefix), in HF
// layout: nn.Linear weights [out, in], GPT-2 Conv1D weights [in, out] as stored.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "models/model_config.h"

namespace qtrain {

// A weight in the quantized format it is stored in, for a base weight that
// keeps it that way, with no float round trip (models/method.h: a method's
// make_base asks for it). `format` names the layout; the loader's own
// description of it travels behind `impl`, and the BaseWeight of that format
// reads it (GGUF: "gguf", impl a GgufPacked, models/gguf_weights.h).
struct PackedTensor {
  std::string format;                // "" = stored as plain floats: use load_f32
  Shape shape;                       // HF [out, in]
  std::shared_ptr<const void> impl;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const std::string& path() const = 0;  // for error messages
  virtual std::vector<std::string> names() const = 0;
  virtual bool has(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;
  // The tensor converted (or dequantized) to F32 on the host. Throws a
  // qtrain::Error naming the file and tensor if it is missing or damaged.
  virtual Tensor load_f32(const std::string& name) const = 0;
  // The tensor as stored, when it is stored quantized; format "" otherwise.
  virtual PackedTensor load_packed(const std::string& name) const { return {}; }
};

// An HF model directory: config.json + model.safetensors or a sharded
// model.safetensors.index.json. Defined in models/hf_loader.cpp.
//
// models/ does not depend on data/, so a model only says where its tokenizer
// is: a path data/'s Tokenizer::load accepts, or (GGUF) the raw vocabulary.
struct TokenizerSource {
  std::string path;                  // HF dir / tokenizer.json; "" when embedded
  std::vector<std::string> tokens;   // GGUF tokenizer.ggml.tokens (id order)
  std::vector<std::string> merges;   // GGUF tokenizer.ggml.merges ("a b")
  std::vector<int32_t> token_types;  // GGUF tokenizer.ggml.token_type
  std::string pre;                   // GGUF tokenizer.ggml.pre ("gpt2", "smollm", ...)
  std::string chat_template;         // tokenizer.chat_template, "" if none
  int32_t bos_id = -1, eos_id = -1, pad_id = -1;
};

class GgufFile;  // models/gguf_file.h
struct LoadedModel {
  ModelConfig config;
  std::unique_ptr<WeightSource> weights;
  TokenizerSource tokenizer;
  std::shared_ptr<const GgufFile> gguf;  // a GGUF source's file (its metadata goes into a merged GGUF export)
};
LoadedModel load_hf_model_dir(const std::string& dir);
// A GGUF file (models/gguf_loader.cpp).
LoadedModel load_gguf_model(const std::string& path);
// Any of the above, or a registered name such as "smollm2-135m" resolved under
// $QTRAIN_MODELS (models/model_registry.cpp).
LoadedModel load_model(const std::string& path_or_name);

}  // namespace qtrain
