// adapter_config.json -> PeftAdapter's type and options (models/peft_io.h).
// Apart from peft_io.cpp so that reading the config needs no model.
#include <cfloat>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "models/json_fields.h"
#include "models/peft_io.h"

namespace qtrain {

using nlohmann::json;
using namespace json_fields;

PeftAdapter parse_peft_adapter_config(const std::string& text, const std::string& cfg_path) {
  PeftAdapter a;
  nlohmann::ordered_json j;  // in file order: rank_pattern's first matching key wins
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const json::exception& e) {
    throw Error(cfg_path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(cfg_path + ": not a JSON object");
  std::string type = opt_string(j, "peft_type", "LORA", cfg_path);
  if (type == "IA3") {
    a.type = "ia3";
    const nlohmann::ordered_json ff =
        j.contains("feedforward_modules") ? j["feedforward_modules"] : nlohmann::ordered_json::array();
    if (ff.is_string()) throw Error(cfg_path + ": field 'feedforward_modules' as a regex is not supported (give a list)");
    if (!ff.is_null() && !ff.is_array()) throw Error(cfg_path + ": field 'feedforward_modules' must be a list of names");
    if (ff.is_array())
      for (auto& m : ff) {
        if (!m.is_string()) throw Error(cfg_path + ": field 'feedforward_modules' must be a list of names, got " + m.dump());
        a.ia3_feedforward.push_back(m.get<std::string>());
      }
  } else if (type == "QBLORA") {  // qtrain's own (models/adapters/qblora.h): LoRA's fields plus blora_lambda
    a.type = "qblora";
    if (!present(j, "blora_lambda")) throw Error(cfg_path + ": field 'blora_lambda' missing");
    a.lora.blora_lambda = int(int_in(j["blora_lambda"], "blora_lambda", 1, INT32_MAX, cfg_path, "a positive integer"));
  } else if (type == "QABLORA") {  // qtrain's own (models/adapters/qablora.h): alpha, r and the tile
    a.type = "qablora";
    const nlohmann::ordered_json t = j.contains("qablora_tile") ? j["qablora_tile"] : nlohmann::ordered_json();
    if (!t.is_array() || t.size() != 2) throw Error(cfg_path + ": field 'qablora_tile' missing or not [out, in]");
    a.lora.qablora_tile_out = int(int_in(t[0], "qablora_tile", 1, INT32_MAX, cfg_path, "a pair of positive integers"));
    a.lora.qablora_tile_in = int(int_in(t[1], "qablora_tile", 1, INT32_MAX, cfg_path, "a pair of positive integers"));
  } else if (type != "LORA") {
    throw Error(cfg_path + ": field 'peft_type' is '" + type +
                "'; qtrain reads LORA (with or without DoRA), IA3, QBLORA and QABLORA");
  }
  if (type != "IA3") {
    if (!present(j, "r")) throw Error(cfg_path + ": field 'r' missing");
    a.lora.r = int(int_in(j["r"], "r", 1, INT32_MAX, cfg_path, "a positive integer"));
  }
  a.lora.alpha = opt_float(j, "lora_alpha", 8.f, -FLT_MAX, FLT_MAX, cfg_path);
  a.lora.dropout = opt_float(j, "lora_dropout", 0.f, 0.0, 1.0, cfg_path);
  a.lora.rslora = opt_bool(j, "use_rslora", false, cfg_path);
  a.fan_in_fan_out = opt_bool(j, "fan_in_fan_out", false, cfg_path);
  if (type == "LORA") a.lora.patterns = read_lora_patterns(j, cfg_path);
  if (type == "LORA" && opt_bool(j, "use_dora", false, cfg_path)) a.type = "dora";
  return a;
}

}  // namespace qtrain
