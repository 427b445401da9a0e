#include "models/merged_model.h"

#include <filesystem>

#include <map>

#include "kernels/error.h"
#include "models/safetensors.h"

namespace qtrain {


std::unique_ptr<Model> merge_adapters_into_base(const Model& with_adapters, ModelOptions opt) {
  StateDictSource merged(with_adapters.hf_state_dict(/*merge_adapters=*/true));
  opt.targets = {};
  return Model::create(with_adapters.config(), merged, opt);
}

void copy_model_files(const std::string& base, const ModelConfig& cfg, const std::string& to, bool config) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(base)) {
    if (config) cfg.write_hf_json((fs::path(to) / "config.json").string());
    return;
  }
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                        "generation_config.json", "special_tokens_map.json"})
    if ((config || std::string(f) != "config.json") && fs::exists(fs::path(base) / f))
      fs::copy_file(fs::path(base) / f, fs::path(to) / f, fs::copy_options::overwrite_existing);
}

void save_packed_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& state,
                       const std::string& base, const ModelConfig& cfg, const std::string& quant_note) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), state,
                   {{"format", "pt"}, {"qtrain_quant", quant_note}});
  copy_model_files(base, cfg, dir, true);
}

}  // namespace qtrain
