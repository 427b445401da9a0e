#include "trainer/prompt_file.h"

#include <nlohmann/json.hpp>

#include "data/json_lines.h"
#include "kernels/error.h"

namespace qtrain {

namespace {

PromptLine parse_prompt(const nlohmann::json& j, const std::string& where, int vocab) {
  if (!j.is_object()) throw Error(where + ": not a JSON object (want {\"prompt\": TEXT} or {\"prompt_ids\": [IDS]})");
  const bool text = j.contains("prompt"), ids = j.contains("prompt_ids");
  if (text == ids)
    throw Error(where + (text ? ": has both 'prompt' and 'prompt_ids'; give one"
                              : ": no field 'prompt' (text) or 'prompt_ids' (token ids)"));
  PromptLine p;
  p.where = where;
  if (text) {
    if (!j["prompt"].is_string()) throw Error(where + ": field 'prompt' must be a string");
    p.text = j["prompt"].get<std::string>();
    if (p.text.empty()) throw Error(where + ": field 'prompt' is empty");
    return p;
  }
  const auto& a = j["prompt_ids"];
  if (!a.is_array() || a.empty()) throw Error(where + ": field 'prompt_ids' must be a non-empty list of token ids");
  for (const auto& v : a) {
    if (!v.is_number_integer()) throw Error(where + ": field 'prompt_ids' holds " + v.dump() + ", not a token id");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= vocab)
      throw Error(where + ": field 'prompt_ids': id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                  std::to_string(vocab) + ")");
    p.ids.push_back(int32_t(id));
  }
  p.has_ids = true;
  return p;
}

}  // namespace

std::vector<PromptLine> read_prompt_file(const std::string& path, int vocab) {
  std::vector<PromptLine> out;
  for_each_json_line(path, [&](const nlohmann::json& j, const std::string& where) {
    out.push_back(parse_prompt(j, where, vocab));
  });
  if (out.empty()) throw Error(path + ": no prompts (want one JSON object per line, {\"prompt\": TEXT})");
  return out;
}

}  // namespace qtrain
