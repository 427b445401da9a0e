#include "models/peft_io.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "models/model.h"

namespace qtrain {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kPrefix = "base_model.model.";

// peft names the tensors after the module; older versions insert the adapter
// name ("lora_A.default.weight") in memory but save without it.
bool split_key(const std::string& key, std::string& module, std::string& which) {
  for (const char* w : {".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector", ".ia3_l", ".qablora_H.weight"}) {
    std::string s = w;
    if (key.size() > s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0) {
      module = key.substr(0, key.size() - s.size());
      which = s.substr(1);
      if (module.rfind(kPrefix, 0) == 0) module = module.substr(kPrefix.size());
      return true;
    }
  }
  return false;
}

bool ends_with_module(const std::string& name, const std::string& key) {  // peft: key == name or ends with "." + key
  return name == key || (name.size() > key.size() && name.compare(name.size() - key.size(), key.size(), key) == 0 &&
                         name[name.size() - key.size() - 1] == '.');
}

// The shortest dotted suffix of `module` that no Linear outside `chosen`
// ends with, so that peft's name matching picks exactly the chosen modules
// (GPT-2 IA3 adapts mlp.c_proj but not attn.c_proj).
std::string target_key(const std::string& module, const Model& model, const std::set<std::string>& chosen) {
  for (size_t p = module.rfind('.');; p = module.rfind('.', p - 1)) {
    std::string key = p == std::string::npos ? module : module.substr(p + 1);
    bool clean = true;
    for (Linear* lin : model.linears())
      if (!chosen.count(lin->name()) && ends_with_module(lin->name(), key)) clean = false;
    if (clean || p == std::string::npos || p == 0) return key;
  }
}

}  // namespace

PeftAdapter read_peft_adapter(const std::string& dir) {
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(dir + ": not a directory; an adapter is a PEFT directory (adapter_config.json + "
                "adapter_model.safetensors)" + (fs::path(dir).extension() == ".gguf" ? "; a llama.cpp LoRA .gguf is "
                "for llama.cpp (llama-cli --lora), here give the PEFT adapter it was exported from" : ""));
  if (!fs::is_directory(dir)) throw Error(dir + ": no such adapter directory");
  std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream f(cfg_path, std::ios::binary);
  if (!f) throw Error(cfg_path + ": cannot open (is this a PEFT adapter directory?)");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  PeftAdapter a = parse_peft_adapter_config(text, cfg_path);
  a.dir = dir;
  std::string st = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(st)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin"))
      throw Error(dir + ": adapter_model.bin (pickle) is not supported; save the adapter with safe_serialization=True");
    throw Error(st + ": missing");
  }
  a.file = std::make_unique<SafetensorsFile>(st);
  std::set<std::string> mods;
  for (auto& e : a.file->entries()) {
    std::string module, which;
    if (!split_key(e.name, module, which))
      throw Error(st + ": tensor '" + e.name +
                  "' is not an adapter tensor (expected ...lora_A.weight, lora_B.weight, lora_magnitude_vector, ia3_l or qablora_H.weight)");
    mods.insert(module);
  }
  if (mods.empty()) throw Error(st + ": holds no adapter tensors");
  a.modules.assign(mods.begin(), mods.end());
  return a;
}

void apply_peft_adapter(Model& model, const PeftAdapter& a) {
  std::set<std::string> wanted(a.modules.begin(), a.modules.end());
  size_t found = 0;
  for (Linear* lin : model.linears()) {
    if (!wanted.count(lin->name())) continue;
    if (!lin->adapter()) throw Error(a.dir + ": the model has no adapter slot for module '" + lin->name() + "'");
    ++found;
    lin->adapter()->load([&](const std::string& suffix, const Shape& shape) {
      std::string key = kPrefix + lin->name() + "." + suffix;
      const SafetensorsEntry* e = a.file->find(key);
      if (!e) e = a.file->find(lin->name() + "." + suffix);
      if (!e) throw Error(a.file->path() + ": missing tensor '" + key + "'");
      if (e->shape != shape)
        throw Error(a.file->path() + ": tensor '" + e->name + "' has shape " + shape_str(e->shape) + ", the model needs " +
                    shape_str(shape) + " (the adapter does not fit this model" +
                    (a.type == "ia3" ? std::string(")")
                                     : ": r=" + std::to_string(lora_options_for(a.lora, lin->name()).r) + ")"));
      return a.file->load_f32(e->name);
    });
  }
  if (found != wanted.size())
    throw Error(a.dir + ": the adapter targets modules this model does not have (e.g. '" + *wanted.begin() + "')");
}

void save_peft_adapter(const std::string& dir, const Model& model, const std::string& base_model) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::set<std::string> adapted, targets;
  for (Linear* lin : model.linears())
    if (lin->adapter()) adapted.insert(lin->name());
  json cfg = {{"task_type", "CAUSAL_LM"},
              {"base_model_name_or_path", base_model},
              {"fan_in_fan_out", model.config().arch == Arch::GPT2},
              {"bias", "none"},
              {"inference_mode", true},
              {"modules_to_save", nullptr}};
  const Adapter* first = nullptr;
  for (Linear* lin : model.linears()) {
    const Adapter* ad = lin->adapter();
    if (!ad) continue;
    ad->write_peft_config(cfg, lin->name());
    first = ad;
    targets.insert(target_key(lin->name(), model, adapted));
    for (auto& [suffix, t] : ad->tensors()) tensors.push_back({kPrefix + lin->name() + "." + suffix, t});
  }
  if (!first) throw Error("the model has no adapter to save (was it trained with a full fine-tune method?)");
  if (cfg.contains("feedforward_modules")) {  // IA3 wrote module paths
    std::set<std::string> paths, ff;
    for (auto& m : cfg["feedforward_modules"]) paths.insert(m.get<std::string>());
    for (auto& m : paths) ff.insert(target_key(m, model, paths));
    cfg["feedforward_modules"] = std::vector<std::string>(ff.begin(), ff.end());
    for (auto& k : ff) targets.insert(k);  // peft wants feedforward_modules within target_modules
  }
  cfg["target_modules"] = std::vector<std::string>(targets.begin(), targets.end());
  save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  std::ofstream f(fs::path(dir) / "adapter_config.json");
  f << cfg.dump(2) << "\n";
  f.close();  // a failed flush (full disk) shows only here
  if (!f) throw Error(dir + "/adapter_config.json: write failed", ErrorKind::Runtime);
}

}  // namespace qtrain
