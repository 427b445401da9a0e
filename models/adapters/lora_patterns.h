// Per-module LoRA rank and alpha: peft's rank_pattern / alpha_pattern.
//
// Each key is a regular expression matched against the end of a module's HF
// path exactly as peft's get_pattern_key does: the first key K (in the order
// given) for which `(.*\.)?(K)$` matches the whole path wins, so "down_proj"
// matches every model.layers.N.mlp.down_proj and "layers.0.mlp.down_proj"
// only layer 0's. A module no key matches keeps the adapter's r / lora_alpha.
// Rank and alpha are looked up independently. Keys are ECMAScript regexes
// (std::regex); peft's are Python `re`, which agrees on everything but
// Python-only syntax such as (?P<name>...) or look-behind.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qtrain {

struct LoraOptions;

struct LoraPatterns {
  std::vector<std::pair<std::string, int>> rank;     // in the order given: the first match wins
  std::vector<std::pair<std::string, float>> alpha;
  // Set by lora_options_for on a module's options: the adapter-wide r and
  // lora_alpha its own were resolved from (0: the module's own are those).
  int config_r = 0;
  float config_alpha = 0.f;
  bool empty() const { return rank.empty() && alpha.empty(); }
};

// Does `key` select `module` under peft's rule? Throws a BadInput Error when
// key is not a valid regular expression.
bool pattern_key_matches(const std::string& key, const std::string& module);

// `opt` for the LoRA adapter on `module`: r and alpha from the first matching
// pattern entries, the adapter-wide values remembered in patterns.config_*.
LoraOptions lora_options_for(const LoraOptions& opt, const std::string& module);

// Every key a valid regular expression, every rank >= 1, every alpha finite
// and > 0; errors start with `where` (a file and field, or a flag).
void check_lora_patterns(const LoraPatterns& p, const std::string& where);

// "KEY=VALUE" items (from --lora-rank-pattern / --lora-alpha-pattern, or a
// config file's list) into pattern entries, in order. A key may itself hold
// '=' (the value follows the last one), but not ','.
LoraPatterns parse_lora_patterns(const std::vector<std::string>& rank_items, const std::vector<std::string>& alpha_items);

// adapter_config.json's r, lora_alpha and this module's rank_pattern /
// alpha_pattern entries, from a module's resolved options. An entry is the
// module's full path, written only where its value differs from the
// adapter-wide one. Full paths, not the keys the user gave: a JSON object is
// written with sorted keys, and peft takes the first key that matches, so
// overlapping user keys could resolve differently after a reload; a full
// path matches its own module only, in any order (peft's own EVA and
// conversion code writes patterns the same way).
void write_lora_pattern_fields(nlohmann::json& cfg, const std::string& module, const LoraOptions& opt);

// rank_pattern / alpha_pattern of an adapter_config.json, in file order (an
// ordered_json parse: the order decides which key wins); errors name cfg_path.
LoraPatterns read_lora_patterns(const nlohmann::ordered_json& cfg, const std::string& cfg_path);

}  // namespace qtrain
