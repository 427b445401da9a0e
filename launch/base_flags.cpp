#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launch/commands.h"
#include "models/loftq.h"
#include "models/method.h"
#include "trainer/setup.h"
#include "trainer/train_config.h"

namespace qtrain::launch {

void add_base_flags(CLI::App& sub, BaseFlags& f) {
  sub.add_option("--loftq-iters", f.loftq_iters, kLoftqRebuildHelp)->check(CLI::Range(-1, 1000))->capture_default_str();
  sub.add_option("--hqq-bits", f.hqq_bits, "hqq-lora: the --hqq-bits the adapter was trained with (4 or 2)")
      ->check(CLI::IsMember({4, 2}))
      ->capture_default_str();
  sub.add_option("--lowra-bits", f.lowra_bits, "lowra: the --lowra-bits the adapter was trained with")
      ->check(CLI::Range(1.0, 4.0))
      ->capture_default_str();
  sub.add_option("--bitnet-subln", f.bitnet_subln,
                 "bitnet, bitnet-lora on float weights: the --bitnet-subln the model was trained with (a ternary "
                 "export records its own)")
      ->capture_default_str();
}

void apply_base_flags(const BaseFlags& f, ModelSpec& ms) {
  ms.loftq_iters = f.loftq_iters;
  ms.hqq_bits = f.hqq_bits;
  ms.lowra_bits = f.lowra_bits;
  ms.bitnet_subln = f.bitnet_subln;
}

namespace {

bool known_method(const std::string& name) {
  const std::vector<std::string> names = method_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// --loftq-iters -1 is the method's own recipe.
int resolved_loftq(const std::string& method, int iters) {
  return iters == -1 && known_method(method) ? find_method(method).loftq_iters : iters;
}

}  // namespace

std::string base_differs_from_training(const ModelSpec& ms) {
  if (ms.adapter.empty()) return "";
  namespace fs = std::filesystem;
  fs::path dir = fs::path(ms.adapter).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "OUT/adapter/"
  const fs::path run = dir.parent_path() / "run.json";
  std::error_code ec;
  if (!fs::is_regular_file(run, ec)) return "";  // not qtrain's OUT/adapter: nothing to compare with
  // run.json's `config` block is the TrainConfig (trainer/train_config.h): read it with the
  // trainer's own reader, so the defaults of a key an older run.json lacks are the trainer's.
  TrainConfig c;
  try {
    from_json(nlohmann::json::parse(std::ifstream(run)).at("config"), c);
  } catch (const std::exception&) {
    return "";  // not a run.json this version wrote: nothing to compare with
  }
  const std::string& method = c.method;
  if (!known_method(method)) return "";  // a recipe (qlora-bitnet) or an unknown name
  std::vector<std::string> want;
  if (method != ms.method) want.push_back("--method " + method);
  if (method == "hqq-lora" && c.hqq_bits != ms.hqq_bits) want.push_back("--hqq-bits " + std::to_string(c.hqq_bits));
  if (method == "lowra" && c.lowra_bits != ms.lowra_bits) {
    std::ostringstream b;
    b << c.lowra_bits;
    want.push_back("--lowra-bits " + b.str());
  }
  const int trained = resolved_loftq(method, c.loftq_iters);
  if (find_method(method).quantizes_base() && trained != resolved_loftq(method, method == ms.method ? ms.loftq_iters : -1))
    want.push_back("--loftq-iters " + std::to_string(trained));
  if (want.empty()) return "";
  std::string flags;
  for (const auto& w : want) flags += (flags.empty() ? "" : " ") + w;
  return run.string() + ": the adapter was trained on a base built with " + flags +
         "; this run builds it otherwise, so its numbers are not the trained model's: pass " + flags;
}

void warn_if_base_differs(const ModelSpec& ms) {
  const std::string why = base_differs_from_training(ms);
  if (!why.empty()) spdlog::warn("{}", why);
}

}  // namespace qtrain::launch
