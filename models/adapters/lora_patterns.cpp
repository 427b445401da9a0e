#include "models/adapters/lora_patterns.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "kernels/error.h"
#include "models/adapters/lora.h"
#include "models/json_fields.h"

namespace qtrain {

bool pattern_key_matches(const std::string& key, const std::string& module) {
  try {
    // peft: re.match(rf"(.*\.)?({key})$", module) — anchored at the start, so
    // the whole path is the optional prefix ending in '.' plus the key.
    return std::regex_match(module, std::regex("(.*\\.)?(" + key + ")$", std::regex::ECMAScript));
  } catch (const std::regex_error& e) {
    throw Error("pattern key '" + key + "' is not a valid regular expression (" + e.what() + ")");
  }
}

namespace {

template <class V>
const V* first_match(const std::vector<std::pair<std::string, V>>& entries, const std::string& module) {
  for (const auto& [key, value] : entries)
    if (pattern_key_matches(key, module)) return &value;
  return nullptr;
}

}  // namespace

LoraOptions lora_options_for(const LoraOptions& opt, const std::string& module) {
  LoraOptions o = opt;
  if (opt.patterns.empty()) return o;
  o.patterns.config_r = opt.r;
  o.patterns.config_alpha = opt.alpha;
  if (const int* r = first_match(opt.patterns.rank, module)) o.r = *r;
  if (const float* a = first_match(opt.patterns.alpha, module)) o.alpha = *a;
  return o;
}

void check_lora_patterns(const LoraPatterns& p, const std::string& where) {
  auto check_key = [&](const std::string& field, const std::string& key) {
    try {
      pattern_key_matches(key, "");
    } catch (const Error& e) {
      throw Error(where + ": " + field + " " + e.what());
    }
  };
  for (const auto& [key, r] : p.rank) {
    check_key("rank_pattern", key);
    if (r < 1) throw Error(where + ": rank_pattern '" + key + "' has rank " + std::to_string(r) + "; it must be >= 1");
  }
  for (const auto& [key, a] : p.alpha) {
    check_key("alpha_pattern", key);
    if (!std::isfinite(a) || a <= 0.f)
      throw Error(where + ": alpha_pattern '" + key + "' has alpha " + std::to_string(a) + "; it must be > 0");
  }
}

namespace {

// "KEY=VALUE" items, the value after the last '=' read as a number that
// `ok` accepts; errors name the flag and say what a value must be (`want`).
std::vector<std::pair<std::string, double>> parse_items(const std::vector<std::string>& items, const char* flag,
                                                        const char* want, bool (*ok)(double)) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& item : items) {
    const size_t eq = item.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw Error(std::string(flag) + ": '" + item + "' is not KEY=VALUE (e.g. down_proj=16)");
    const std::string v = item.substr(eq + 1);
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || !ok(x)) throw Error(std::string(flag) + ": '" + item + "': " + want);
    out.push_back({item.substr(0, eq), x});
  }
  return out;
}

}  // namespace

LoraPatterns parse_lora_patterns(const std::vector<std::string>& rank_items, const std::vector<std::string>& alpha_items) {
  LoraPatterns p;
  for (auto& [key, r] : parse_items(rank_items, "--lora-rank-pattern", "the rank must be a whole number >= 1",
                                    [](double x) { return x >= 1 && x <= 1e9 && x == std::floor(x); }))
    p.rank.push_back({key, int(r)});
  for (auto& [key, a] : parse_items(alpha_items, "--lora-alpha-pattern", "alpha must be a number > 0",
                                    [](double x) { return std::isfinite(x) && x > 0 && x < 1e30; }))
    p.alpha.push_back({key, float(a)});
  check_lora_patterns(p, "--lora-rank-pattern/--lora-alpha-pattern");
  return p;
}

void write_lora_pattern_fields(nlohmann::json& cfg, const std::string& module, const LoraOptions& opt) {
  const int r0 = opt.patterns.config_r > 0 ? opt.patterns.config_r : opt.r;
  const float a0 = opt.patterns.config_alpha > 0.f ? opt.patterns.config_alpha : opt.alpha;
  cfg["r"] = r0;
  cfg["lora_alpha"] = a0;
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (!cfg.contains(k) || !cfg[k].is_object()) cfg[k] = nlohmann::json::object();
  if (opt.r != r0) cfg["rank_pattern"][module] = opt.r;
  if (opt.alpha != a0) cfg["alpha_pattern"][module] = opt.alpha;
}

LoraPatterns read_lora_patterns(const nlohmann::ordered_json& cfg, const std::string& cfg_path) {
  LoraPatterns p;
  auto field = [&](const char* name) -> const nlohmann::ordered_json* {
    auto it = cfg.find(name);
    if (it == cfg.end() || it->is_null()) return nullptr;
    if (!it->is_object()) throw Error(cfg_path + ": field '" + name + "' must be an object of module pattern -> value");
    return &*it;
  };
  if (const auto* rp = field("rank_pattern"))
    for (const auto& [key, v] : rp->items()) {
      p.rank.push_back({key, int(json_fields::int_in(v, "rank_pattern' entry '" + key, INT32_MIN, INT32_MAX, cfg_path,
                                                     "a whole number"))});
    }
  if (const auto* ap = field("alpha_pattern"))
    for (const auto& [key, v] : ap->items()) {
      if (!v.is_number())
        throw Error(cfg_path + ": field 'alpha_pattern' entry '" + key + "' must be a number (got " + v.dump() + ")");
      p.alpha.push_back({key, v.get<float>()});
    }
  check_lora_patterns(p, cfg_path);
  return p;
}

}  // namespace qtrain
