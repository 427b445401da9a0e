// An HF model directory: config.json + model.safetensors, or shards listed in
// model.safetensors.index.json.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "models/safetensors.h"
#include "models/weight_source.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

// HF GPT-2 checkpoints name tensors with or without a "transformer." prefix;
// qtrain's names never carry it.
std::string canonical(const std::string& name) {
  const std::string p = "transformer.";
  return name.rfind(p, 0) == 0 ? name.substr(p.size()) : name;
}

class SafetensorsWeights : public WeightSource {
 public:
  explicit SafetensorsWeights(std::string dir_label) : label_(std::move(dir_label)) {}
  void add_file(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    for (auto& e : files_.back()->entries()) index_[canonical(e.name)] = {files_.back().get(), &e};
  }
  const std::string& path() const override { return label_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& [k, v] : index_) n.push_back(k);
    return n;
  }
  bool has(const std::string& name) const override { return index_.count(name) > 0; }
  Shape shape(const std::string& name) const override { return at(name).second->shape; }
  Tensor load_f32(const std::string& name) const override {
    auto [file, e] = at(name);
    return file->load_f32(e->name);
  }

 private:
  std::pair<const SafetensorsFile*, const SafetensorsEntry*> at(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw Error(label_ + ": the model has no tensor '" + name + "'");
    return it->second;
  }
  std::string label_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsEntry*>> index_;
};

TokenizerSource find_tokenizer(const fs::path& dir) {
  TokenizerSource t;
  if (fs::exists(dir / "tokenizer.json") || fs::exists(dir / "vocab.json") || fs::exists(dir / "encoder.json"))
    t.path = dir.string();
  std::ifstream tc(dir / "tokenizer_config.json");
  if (tc) {
    try {
      auto j = nlohmann::json::parse(tc);
      if (j.contains("chat_template") && j["chat_template"].is_string()) t.chat_template = j["chat_template"];
    } catch (...) {
      // a broken tokenizer_config.json only loses the chat template; the tokenizer itself reports its own errors
    }
  }
  return t;
}

}  // namespace

LoadedModel load_hf_model_dir(const std::string& dir_str) {
  fs::path dir(dir_str);
  if (!fs::exists(dir)) throw Error(dir_str + ": no such model directory or file");
  if (!fs::is_directory(dir)) throw Error(dir_str + ": expected an HF model directory (config.json + model.safetensors) or a .gguf file");
  LoadedModel m;
  m.config = ModelConfig::from_hf_json((dir / "config.json").string());
  auto weights = std::make_unique<SafetensorsWeights>(dir_str);
  fs::path single = dir / "model.safetensors";
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    weights->add_file(single.string());
  } else if (fs::exists(index)) {
    std::ifstream f(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw Error(index.string() + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": missing field 'weight_map'");
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) shards.insert(file.get<std::string>());
    for (auto& s : shards) weights->add_file((dir / s).string());
  } else {
    throw Error(dir_str + ": no model.safetensors or model.safetensors.index.json");
  }
  m.weights = std::move(weights);
  m.tokenizer = find_tokenizer(dir);
  m.tokenizer.bos_id = m.config.bos_id;
  m.tokenizer.eos_id = m.config.eos_id;
  m.tokenizer.pad_id = m.config.pad_id;
  return m;
}

}  // namespace qtrain
