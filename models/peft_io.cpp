#include "models/peft_io.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "models/gguf_adapter.h"
#include "models/gguf_file.h"
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

class SafetensorsAdapter : public AdapterTensors {
 public:
  explicit SafetensorsAdapter(const std::string& path) : f_(path) {}
  const std::string& path() const override { return f_.path(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const SafetensorsEntry& e : f_.entries()) n.push_back(e.name);
    return n;
  }
  const Shape* shape(const std::string& name) const override {
    const SafetensorsEntry* e = f_.find(name);
    return e ? &e->shape : nullptr;
  }
  Tensor load_f32(const std::string& name) const override { return f_.load_f32(name); }

 private:
  SafetensorsFile f_;
};

}  // namespace

PeftAdapter read_peft_adapter(const std::string& dir, const ModelConfig* model) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec) && is_gguf_path(dir)) {
    if (!model) throw Error(dir + ": a llama.cpp LoRA adapter is read against its model (read_peft_adapter needs it)");
    return read_gguf_lora_adapter(dir, *model);
  }
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(dir + ": not a directory; an adapter is a PEFT directory (adapter_config.json + "
                "adapter_model.safetensors) or a llama.cpp LoRA adapter (.gguf)");
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
  a.tensors = std::make_unique<SafetensorsAdapter>(st);
  std::set<std::string> mods;
  for (const std::string& name : a.tensors->names()) {
    std::string module, which;
    if (!split_key(name, module, which))
      throw Error(st + ": tensor '" + name +
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
      const Shape* have = a.tensors->shape(key);
      if (!have && (have = a.tensors->shape(lin->name() + "." + suffix))) key = lin->name() + "." + suffix;
      if (!have) throw Error(a.tensors->path() + ": missing tensor '" + key + "'");
      if (*have != shape)
        throw Error(a.tensors->path() + ": tensor '" + key + "' has shape " + shape_str(*have) + ", the model needs " +
                    shape_str(shape) + " (the adapter does not fit this model" +
                    (a.type == "ia3" ? std::string(")")
                                     : ": r=" + std::to_string(lora_options_for(a.lora, lin->name()).r) + ")"));
      return a.tensors->load_f32(key);
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
