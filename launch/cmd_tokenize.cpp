// qtrain tokenize: JSON lines on stdin -> JSON lines on stdout, one per input line, in order.
//   {"text": "..."}  ->  {"ids": [...]}        (default)
//   {"ids": [...]}   ->  {"text": "..."}       (--decode)
#include <climits>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/tokenizer.h"
#include "kernels/error.h"
#include "launch/commands.h"
#include "trainer/setup.h"

namespace qtrain::launch {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  bool decode = false;
  bool allow_special = false;
};

nlohmann::json parse_line(const std::string& line, size_t lineno, const char* field) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error("stdin line " + std::to_string(lineno) + ": invalid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains(field))
    throw Error("stdin line " + std::to_string(lineno) + ": expected an object with \"" + field + "\"");
  return j;
}

int run_tokenize(const TokenizeOptions& opt) {
  auto tok = load_tokenizer(opt.tokenizer);
  std::ios::sync_with_stdio(false);
  std::string line, out;
  std::vector<int32_t> ids;
  size_t lineno = 0;
  while (std::getline(std::cin, line)) {
    ++lineno;
    if (line.empty()) continue;
    if (opt.decode) {
      auto j = parse_line(line, lineno, "ids");
      if (!j["ids"].is_array()) throw Error("stdin line " + std::to_string(lineno) + ": \"ids\" must be an array");
      // Element by element: get<vector<int32_t>> reads 1.5, true and 2^32+1 all as 1.
      ids.clear();
      for (size_t i = 0; i < j["ids"].size(); ++i) {
        const auto& v = j["ids"][i];
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
          throw Error("stdin line " + std::to_string(lineno) + ": \"ids\"[" + std::to_string(i) + "] is " + v.dump() +
                      ", not a token id (an integer >= 0)");
        ids.push_back(int32_t(v.get<int64_t>()));
      }
      std::string text;
      try {
        text = tok->decode(ids);
      } catch (const Error& e) {
        throw Error("stdin line " + std::to_string(lineno) + ": " + e.what());
      }
      // A cut through a multi-byte character is not valid UTF-8; JSON gets U+FFFD there.
      out = nlohmann::json{{"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      auto j = parse_line(line, lineno, "text");
      if (!j["text"].is_string()) throw Error("stdin line " + std::to_string(lineno) + ": \"text\" must be a string");
      ids.clear();
      tok->encode_into(j["text"].get_ref<const std::string&>(), opt.allow_special, ids);
      out = "{\"ids\":[";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      out += "]}";
    }
    out += '\n';
    std::cout << out;
  }
  std::cout.flush();
  if (!std::cout) throw Error("tokenize: writing stdout failed", ErrorKind::Runtime);
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<TokenizeOptions>();
  auto* sub = app.add_subcommand(
      "tokenize",
      "Encode JSON lines {\"text\": ...} from stdin into {\"ids\": [...]} on stdout, one output line per input "
      "line, in order (blank lines are skipped); --decode does the reverse.\n"
      "  echo '{\"text\": \"Hello world\"}' | qtrain tokenize --tokenizer ../shared/data/gpt2-tokenizer");
  sub->add_option("--tokenizer", opt->tokenizer, kTokenizerForms)
      ->required();
  sub->add_flag("--decode", opt->decode, "read {\"ids\": [...]} lines and write {\"text\": ...} lines");
  sub->add_flag("--allow-special", opt->allow_special,
                "recognise special tokens such as <|endoftext|> in the text (default: encode them as plain text)");
  add_config_option(*sub);
  sub->callback([&run, opt] { run = [opt] { return run_tokenize(*opt); }; });
}

}  // namespace qtrain::launch
