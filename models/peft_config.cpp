// adapter_config.json -> PeftAdapter's type and options (models/peft_io.h).
// Apart from peft_io.cpp so that reading the config needs no model.
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "models/peft_io.h"

namespace qtrain {

using nlohmann::json;

PeftAdapter parse_peft_adapter_config(const std::string& text, const std::string& cfg_path) {
  PeftAdapter a;
  nlohmann::ordered_json j;  // in file order: rank_pattern's first matching key wins
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(cfg_path + ": invalid JSON (" + e.what() + ")");
  }
  std::string type = j.value("peft_type", "LORA");
  if (type == "IA3") {
    a.type = "ia3";
    const nlohmann::ordered_json ff =
        j.contains("feedforward_modules") ? j["feedforward_modules"] : nlohmann::ordered_json::array();
    if (ff.is_string()) throw Error(cfg_path + ": field 'feedforward_modules' as a regex is not supported (give a list)");
    if (!ff.is_null() && !ff.is_array()) throw Error(cfg_path + ": field 'feedforward_modules' must be a list of names");
    if (ff.is_array())
      for (auto& m : ff) a.ia3_feedforward.push_back(m.get<std::string>());
  } else if (type == "QBLORA") {  // qtrain's own (models/adapters/qblora.h): LoRA's fields plus blora_lambda
    a.type = "qblora";
    if (!j.contains("blora_lambda") || !j["blora_lambda"].is_number_integer() || j["blora_lambda"].get<int>() < 1)
      throw Error(cfg_path + ": field 'blora_lambda' missing or not a positive integer");
    a.lora.blora_lambda = j["blora_lambda"].get<int>();
  } else if (type == "QABLORA") {  // qtrain's own (models/adapters/qablora.h): alpha, r and the tile
    a.type = "qablora";
    const nlohmann::ordered_json t = j.contains("qablora_tile") ? j["qablora_tile"] : nlohmann::ordered_json();
    if (!t.is_array() || t.size() != 2 || !t[0].is_number_integer() || !t[1].is_number_integer())
      throw Error(cfg_path + ": field 'qablora_tile' missing or not [out, in]");
    a.lora.qablora_tile_out = t[0].get<int>();
    a.lora.qablora_tile_in = t[1].get<int>();
  } else if (type != "LORA") {
    throw Error(cfg_path + ": field 'peft_type' is '" + type +
                "'; qtrain reads LORA (with or without DoRA), IA3, QBLORA and QABLORA");
  }
  if (type != "IA3" && (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int>() <= 0))
    throw Error(cfg_path + ": field 'r' missing or not a positive integer");
  if (type != "IA3") a.lora.r = j["r"].get<int>();
  a.lora.alpha = j.contains("lora_alpha") && j["lora_alpha"].is_number() ? j["lora_alpha"].get<float>() : 8.f;
  a.lora.dropout = j.contains("lora_dropout") && j["lora_dropout"].is_number() ? j["lora_dropout"].get<float>() : 0.f;
  a.lora.rslora = j.value("use_rslora", false);
  a.fan_in_fan_out = j.value("fan_in_fan_out", false);
  if (type == "LORA") a.lora.patterns = read_lora_patterns(j, cfg_path);
  if (type == "LORA" && j.value("use_dora", false)) a.type = "dora";
  return a;
}

}  // namespace qtrain
