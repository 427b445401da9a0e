// An adapter type: what a targeted Linear gets (`--adapter-type NAME`, or the
// method's default). Each type registers itself from its own file in
// models/adapters/ (QT_REGISTER_ADAPTER), so it combines with every base a
// method can hold: LoRA, DoRA or IA3 on a dense, int8, NF4, GGUF ... base.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/adapters/adapter.h"
#include "models/model_config.h"
#include "models/registry.h"

namespace qtrain {

struct ModelOptions;

struct AdapterRequest {
  const std::string& module;  // the Linear's HF path, e.g. "model.layers.0.mlp.down_proj"
  int64_t in, out;
  const ModelOptions& opt;
};

struct AdapterType {
  std::string name;
  std::string help;  // one line for --help
  std::function<std::unique_ptr<Adapter>(const AdapterRequest&)> make;
  // Fills the options a user left at their defaults with this type's defaults
  // for an architecture (IA3: peft's target and feed-forward modules); unset = none.
  std::function<void(Arch, ModelOptions&)> defaults;
};

void register_adapter_type(AdapterType t);
// The type called `name`, or an Error listing every registered name.
const AdapterType& find_adapter_type(const std::string& name);
std::string adapter_type_list();  // "dora | ia3 | lora"
std::string adapter_type_help();  // one "name: help" line per type

}  // namespace qtrain

// In an adapter's own file, at namespace scope (see QT_REGISTER).
#define QT_REGISTER_ADAPTER(ident, ...) QT_REGISTER(::qtrain::register_adapter_type, adapter_##ident, __VA_ARGS__)
