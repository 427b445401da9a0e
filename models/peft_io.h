// PEFT adapters on disk: adapter_config.json + adapter_model.safetensors with
// tensors "base_model.model.<module>.<suffix>": LoRA lora_A.weight /
// lora_B.weight (+ lora_magnitude_vector with use_dora), IA3 ia3_l.
// What qtrain writes loads in peft's PeftModel.from_pretrained unchanged, and
// qtrain reads adapters that peft wrote. A llama.cpp LoRA adapter (.gguf) is
// read as the PEFT LoRA adapter it holds (models/gguf_adapter.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/adapters/lora.h"
#include "models/safetensors.h"

namespace qtrain {

class Model;
struct ModelConfig;

// An adapter's tensors under their PEFT names ("base_model.model.<module>.lora_A.weight"):
// adapter_model.safetensors, or a llama.cpp .gguf adapter converted when read.
class AdapterTensors {
 public:
  virtual ~AdapterTensors() = default;
  virtual const std::string& path() const = 0;  // the file, for messages
  virtual std::vector<std::string> names() const = 0;
  virtual const Shape* shape(const std::string& name) const = 0;  // nullptr: no such tensor
  virtual Tensor load_f32(const std::string& name) const = 0;
};

struct PeftAdapter {
  std::string dir;
  std::string type = "lora";         // the adapter type: lora, dora (use_dora), ia3 or qblora (peft_type QBLORA)
  LoraOptions lora;                  // r, lora_alpha, lora_dropout, use_rslora, rank/alpha_pattern (LoRA, DoRA, Q-BLoRA; + blora_lambda)
  std::vector<std::string> ia3_feedforward;  // IA3's feedforward_modules
  bool fan_in_fan_out = false;
  std::vector<std::string> modules;  // HF module paths that carry an adapter
  std::unique_ptr<AdapterTensors> tensors;
};

// Reads and validates the adapter directory, or a llama.cpp LoRA .gguf file,
// which is read against `model` (its Q/K layout; required for a .gguf);
// errors name the file and field.
PeftAdapter read_peft_adapter(const std::string& path, const ModelConfig* model = nullptr);
// The adapter_config.json part of it: type, LoRA options, IA3 modules (no
// dir, modules or file). `text` is the file's contents, cfg_path its name.
PeftAdapter parse_peft_adapter_config(const std::string& text, const std::string& cfg_path);
// Copies the adapter's tensors into the model's adapter parameters. The model must
// have been built with targets == adapter.modules and the same r; every shape
// is checked ("adapter ... lora_A has shape [4,64], the model needs [4,32]").
void apply_peft_adapter(Model& model, const PeftAdapter& adapter);
// Writes the model's adapters as a PEFT adapter into dir (created). Module
// names in target_modules (and IA3's feedforward_modules) are the shortest
// suffixes that peft matches to exactly the adapted modules.
void save_peft_adapter(const std::string& dir, const Model& model, const std::string& base_model);

}  // namespace qtrain
