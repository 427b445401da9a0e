#include "data/record_format.h"

#include <algorithm>

#include "data/utf8.h"
#include "kernels/error.h"

namespace qtrain {

using nlohmann::json;

namespace {

// The first of `names` present as a string, or nullptr.
const json* field(const json& j, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = j.find(n);
    if (it != j.end() && it->is_string()) return &*it;
  }
  return nullptr;
}

std::string need(const json& j, std::initializer_list<const char*> names, const std::string& where) {
  if (const json* f = field(j, names)) return f->get<std::string>();
  std::string list;
  for (const char* n : names) list += (list.empty() ? "'" : " or '") + std::string(n) + "'";
  throw Error(where + ": missing string field " + list);
}

std::string keys_of(const json& j) {
  std::string out;
  for (auto& [k, v] : j.items()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

const char* kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n";
const char* kAlpacaNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n";

Example alpaca(const std::string& instruction, const std::string& input, const std::string& output) {
  std::string prompt = input.empty() ? kAlpacaNoInput + instruction + "\n\n### Response:\n"
                                     : kAlpacaWithInput + instruction + "\n\n### Input:\n" + input +
                                           "\n\n### Response:\n";
  Example ex;
  ex.segments.push_back({prompt, false, false});
  ex.segments.push_back({output, true, false});
  return ex;
}

// HH-RLHF: "\n\nHuman: ...\n\nAssistant: ..." -> turns.
std::vector<ChatTurn> hh_turns(const std::string& s, const std::string& where) {
  std::vector<ChatTurn> turns;
  const std::string human = "\n\nHuman: ", assistant = "\n\nAssistant: ";
  size_t pos = 0;
  while (pos < s.size()) {
    bool is_h = s.compare(pos, human.size(), human) == 0;
    bool is_a = s.compare(pos, assistant.size(), assistant) == 0;
    if (!is_h && !is_a) throw Error(where + ": 'chosen' is not in the HH-RLHF \\n\\nHuman:/\\n\\nAssistant: form");
    pos += is_h ? human.size() : assistant.size();
    size_t nh = s.find(human, pos), na = s.find(assistant, pos);
    size_t end = std::min(nh, na);
    if (end == std::string::npos) end = s.size();
    turns.push_back({is_h ? "user" : "assistant", s.substr(pos, end - pos)});
    pos = end;
  }
  return turns;
}

}  // namespace

RecordKind record_kind_from_name(const std::string& n) {
  if (n == "auto") return RecordKind::Auto;
  if (n == "codesearchnet") return RecordKind::CodeSearchNet;
  if (n == "instruct" || n == "alpaca") return RecordKind::Instruct;
  if (n == "chat") return RecordKind::Chat;
  if (n == "text") return RecordKind::Text;
  if (n == "input_ids") return RecordKind::InputIds;
  throw Error("--format: unknown format '" + n + "' (auto, codesearchnet, instruct, chat, text, input_ids, bin)");
}

RecordFormat::RecordFormat(RecordKind kind, const std::string& fields, std::shared_ptr<const ChatRenderer> chat)
    : kind_(kind), chat_(chat ? std::move(chat) : std::make_shared<ChatMLRenderer>()) {
  if (fields == "code") docstring_code_ = false;
  else if (fields == "docstring-code") docstring_code_ = true;
  else throw Error("--fields: unknown value '" + fields + "' (code, docstring-code)");
}

RecordKind RecordFormat::detect(const json& j) {
  if (j.contains("input_ids")) return RecordKind::InputIds;
  if (j.contains("messages") || j.contains("chosen")) return RecordKind::Chat;
  if (j.contains("instruction")) return RecordKind::Instruct;
  if (field(j, {"code", "func_code_string", "whole_func_string", "original_string"})) return RecordKind::CodeSearchNet;
  if (j.contains("text")) return RecordKind::Text;
  return RecordKind::Auto;
}

Example RecordFormat::parse(std::string_view line, const std::string& where) const {
  if (size_t bad = utf8::first_invalid(line); bad != std::string_view::npos)
    throw Error(where + ": invalid UTF-8 at byte " + std::to_string(bad));
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    throw Error(where + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object per line");
  RecordKind kind = kind_ == RecordKind::Auto ? detect(j) : kind_;
  if (kind == RecordKind::Auto)
    throw Error(where + ": no known fields (saw: " + keys_of(j) +
                "); expected code, instruction/output, messages, chosen, text or input_ids");
  return from_json(j, kind, where);
}

Example RecordFormat::from_json(const json& j, RecordKind kind, const std::string& where) const {
  Example ex;
  switch (kind) {
    case RecordKind::CodeSearchNet: {
      std::string code = need(j, {"code", "func_code_string", "whole_func_string", "original_string"}, where);
      const json* doc = docstring_code_ ? field(j, {"docstring", "func_documentation_string"}) : nullptr;
      if (doc && !doc->get<std::string>().empty()) {
        // docstring -> code, as an instruction pair: the docstring is the prompt.
        ex.segments.push_back({doc->get<std::string>() + "\n", false, false});
      }
      ex.segments.push_back({code, true, false});
      return ex;
    }
    case RecordKind::Instruct: {
      std::string instruction = need(j, {"instruction"}, where);
      if (auto it = j.find("instances"); it != j.end() && it->is_array() && !it->empty()) {
        // Unnatural Instructions: the first instance carries input and output.
        const json& in = (*it)[0];
        const json* input = field(in, {"input"});
        return alpaca(instruction, input ? input->get<std::string>() : "", need(in, {"output"}, where + ": instances[0]"));
      }
      const json* input = field(j, {"input"});
      return alpaca(instruction, input ? input->get<std::string>() : "", need(j, {"output", "response"}, where));
    }
    case RecordKind::Chat: {
      std::vector<ChatTurn> turns;
      if (auto it = j.find("messages"); it != j.end()) {
        if (!it->is_array()) throw Error(where + ": 'messages' must be an array");
        for (size_t i = 0; i < it->size(); ++i) {
          const json& m = (*it)[i];
          std::string w = where + ": messages[" + std::to_string(i) + "]";
          if (!m.is_object()) throw Error(w + " is not an object");
          std::string role = need(m, {"role"}, w);
          if (role == "prompter" || role == "human") role = "user";  // OASST, ShareGPT-ish
          if (role == "gpt" || role == "bot") role = "assistant";
          turns.push_back({role, need(m, {"content", "text"}, w)});
        }
      } else {
        turns = hh_turns(need(j, {"chosen"}, where), where);
      }
      if (turns.empty()) throw Error(where + ": 'messages' is empty");
      // The loss is on assistant turns only: without one the record trains nothing, and a file
      // of them (a role spelled "Assistant" or "model") would run to the end at loss 0.
      if (std::none_of(turns.begin(), turns.end(), [](const ChatTurn& t) { return t.role == "assistant"; })) {
        std::string roles;
        for (const auto& t : turns)
          if (roles.find("'" + t.role + "'") == std::string::npos)
            roles += (roles.empty() ? "'" : ", '") + t.role + "'";
        throw Error(where + ": no 'assistant' turn (roles: " + roles +
                    "); the loss is on assistant turns only, so this record would train nothing");
      }
      ex.segments = chat_segments(*chat_, turns);
      return ex;
    }
    case RecordKind::Text:
      ex.segments.push_back({need(j, {"text"}, where), true, false});
      return ex;
    case RecordKind::InputIds: {
      auto it = j.find("input_ids");
      if (it == j.end() || !it->is_array()) throw Error(where + ": missing array field 'input_ids'");
      ex.pretokenized = true;
      ex.ids.reserve(it->size());
      for (const auto& v : *it) {
        if (!v.is_number_integer()) throw Error(where + ": input_ids holds a non-integer");
        int64_t id = v.get<int64_t>();
        if (id < 0 || id > INT32_MAX) throw Error(where + ": input_ids holds " + std::to_string(id));
        ex.ids.push_back(int32_t(id));
      }
      if (ex.ids.empty()) throw Error(where + ": input_ids is empty");
      return ex;
    }
    case RecordKind::Auto:
      break;
  }
  throw Error(where + ": no record format");
}

}  // namespace qtrain
