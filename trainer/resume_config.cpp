#include "trainer/resume_config.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "kernels/error.h"
#include "trainer/checkpoint.h"
#include "trainer/durable_io.h"

namespace qtrain {

namespace fs = std::filesystem;

std::string resume_checkpoint_dir(const std::string& resume) {
  std::string dir = find_checkpoint((fs::path(resume) / "checkpoint").string());
  if (dir.empty()) dir = find_checkpoint(resume);
  return dir;
}

nlohmann::json checkpoint_config(const TrainConfig& c) {
  nlohmann::json j = to_json(c);
  for (const char* key : {"model", "tokenizer", "data", "eval_data"}) {
    const std::string v = j.value(key, std::string());
    std::error_code ec;
    if (!v.empty() && fs::path(v).is_relative() && fs::exists(v, ec)) j[key] = fs::absolute(v, ec).lexically_normal().string();
  }
  return j;
}

TrainConfig merge_resume_config(const TrainConfig& cli, const std::set<std::string>& given) {
  if (cli.resume.empty()) return cli;
  const std::string dir = resume_checkpoint_dir(cli.resume);
  if (dir.empty()) throw Error(cli.resume + ": no complete checkpoint found (looked for checkpoint/ inside it)");
  const std::string state_path = dir + "/state.json";
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_path + ": invalid JSON (" + e.what() + ")");
  }
  if (!state.is_object() || !state.contains("config") || !state["config"].is_object())
    throw Error(state_path + ": missing field 'config'");
  const nlohmann::json& saved = state["config"];

  TrainConfig merged = cli;
  from_json(saved, merged);  // everything from the checkpoint...
  const nlohmann::json cli_json = to_json(cli);
  nlohmann::json over = nlohmann::json::object();
  for (auto it = cli_json.begin(); it != cli_json.end(); ++it)
    if (given.count(it.key())) over[it.key()] = it.value();
  from_json(over, merged);  // ...then what was given with --resume
  for (auto it = over.begin(); it != over.end(); ++it) {
    if (!saved.contains(it.key()) || saved[it.key()] == it.value()) continue;
    spdlog::warn("--resume: {} changed from {} to {} (given on the command line: a deliberate change)", it.key(),
                 saved[it.key()].dump(), it.value().dump());
  }
  if (!given.count("out")) {  // the run being continued: the folder holding the checkpoint
    merged.out = fs::path(dir).parent_path().string();
    if (merged.out.empty()) merged.out = ".";
  }
  return merged;
}

}  // namespace qtrain
