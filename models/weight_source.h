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
};

// An HF model directory: config.json + model.safetensors or a sharded
// model.safetensors.index.json. Defined in models/hf_loader.cpp.
struct LoadedModel {
  ModelConfig config;
  std::unique_ptr<WeightSource> weights;
  std::string tokenizer_path;  // what data/ Tokenizer::load accepts ("" if none found)
};
LoadedModel load_hf_model_dir(const std::string& dir);

}  // namespace qtrain
