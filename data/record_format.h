// RecordFormat: how one JSON line becomes an Example. Knows the field names of
// CodeSearchNet (original and HF dataset namings), Alpaca, Unnatural
// Instructions, chat `messages` (OASST's prompter/text included), HH-RLHF
// `chosen`, plain `text` and pre-tokenized `input_ids`.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "data/chat_format.h"
#include "data/example.h"

namespace qtrain {

enum class RecordKind { Auto, CodeSearchNet, Instruct, Chat, Text, InputIds };

// "auto" | "codesearchnet" | "instruct" | "chat" | "text" | "input_ids"; unknown -> Error.
RecordKind record_kind_from_name(const std::string& name);

class RecordFormat {
 public:
  // fields: CodeSearchNet "code" or "docstring-code". chat: renderer for
  // `messages` (nullptr = built-in ChatML).
  RecordFormat(RecordKind kind, const std::string& fields, std::shared_ptr<const ChatRenderer> chat = nullptr);

  // Parses one line. `where` ("file:line") prefixes every error: malformed JSON,
  // invalid UTF-8, missing or mistyped fields.
  Example parse(std::string_view line, const std::string& where) const;
  // The kind a JSON object looks like (Auto detection), or Auto when unknown.
  static RecordKind detect(const nlohmann::json& j);

 private:
  Example from_json(const nlohmann::json& j, RecordKind kind, const std::string& where) const;
  RecordKind kind_;
  bool docstring_code_;
  std::shared_ptr<const ChatRenderer> chat_;
};

}  // namespace qtrain
