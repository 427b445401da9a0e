// Named pretrained models qtrain knows (e.g. "smollm2-135m") and where they
// live: the models cache dir, $QTRAIN_MODELS or else ~/.cache/qtrain/models,
// filled by launch/fetch-models.sh. Nothing here downloads.
#pragma once
#include <string>
#include <vector>

namespace qtrain {

struct RegisteredModel {
  std::string name;   // what --model accepts
  std::string file;   // file name inside the models cache dir
  std::string about;  // one line for `--help` and error messages
};

const std::vector<RegisteredModel>& registered_models();
std::string models_cache_dir();
// The command that fetches every registered model into the cache dir.
std::string fetch_models_command();
// A registered name -> its path in the cache dir (which may not exist yet);
// "" when the name is not registered.
std::string registered_model_path(const std::string& name);
// The file or directory load_model reads for --model path_or_name: the path
// itself, or a registered name's file in the cache dir ("" for random:<shape>).
std::string model_file_path(const std::string& path_or_name);

}  // namespace qtrain
