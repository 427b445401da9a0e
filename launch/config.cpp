// --config FILE.json: every long option can come from a JSON object with the
// same keys ('-' or '_'); flags given on the command line override the file.
// The file is expanded into ordinary flags before CLI11 parses, so a config
// value and a flag go through exactly the same validation; before that, each
// value's JSON type is checked against the option's, so a wrong one names
// the file and the key. Relative paths in the file are relative to the file.
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/error.h"
#include "launch/commands.h"

namespace qtrain::launch {

void add_config_option(CLI::App& sub) {
  // Only documents the flag: expand_config() has already replaced it.
  sub.add_option("--config", "JSON file of options (same names as the flags, '-' or '_'); flags override it");
}

namespace {

namespace fs = std::filesystem;

// Keys whose value is a file or directory.
const std::set<std::string> kPathKeys = {"model", "tokenizer", "data", "eval_data", "out", "resume", "adapter", "from"};
// Of those, the ones that may also hold a name that is not a path
// (smollm2-135m, random:gpt2): resolved only when they look like a path.
const std::set<std::string> kNameOrPathKeys = {"model", "tokenizer"};

// A relative path from the file, made relative to the file's folder.
std::string resolve_path(const std::string& key, const std::string& value, const fs::path& base) {
  if (value.empty() || base.empty() || fs::path(value).is_absolute()) return value;
  const std::string resolved = (base / value).lexically_normal().string();
  if (kNameOrPathKeys.count(key) && value.find('/') == std::string::npos && !fs::exists(resolved)) return value;
  return resolved;
}

// The JSON type an option takes, from CLI11's type name ("INT", "UINT",
// "FLOAT", "TEXT", possibly followed by ":<validator>"). Returns the value to
// use: a whole number written as 1e3 becomes 1000 for an integer option.
nlohmann::json check_type(const std::string& file, const std::string& key, const nlohmann::json& v, const CLI::Option& opt) {
  auto bad = [&](const char* want) {
    throw Error(file + ": key '" + key + "' must be " + want + " (got " + v.dump() + ")");
  };
  if (v.is_null()) return v;
  if (opt.get_expected_max() == 0) {  // a flag
    if (!v.is_boolean()) bad("true or false");
    return v;
  }
  const std::string type = opt.get_type_name().substr(0, opt.get_type_name().find(':'));
  const bool many = opt.get_expected_max() > 1;
  if (many && v.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : v) out.push_back(check_type(file, key, e, opt));
    return out;
  }
  if (type == "INT" || type == "UINT") {
    if (v.is_number_integer()) {
      if (type == "UINT" && v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0)
        bad("a whole number >= 0");
      return v;
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::abs(d) < 9e18 && d == double(int64_t(d)) && (type == "INT" || d >= 0)) return int64_t(d);
    }
    bad(type == "INT" ? "a whole number" : "a whole number >= 0");
  } else if (type == "FLOAT") {
    if (!v.is_number()) bad("a number");
  } else if (type == "BOOLEAN") {  // an option taking true/false (--bitnet-subln), not a flag
    if (!v.is_boolean()) bad("true or false");
  } else if (!v.is_string()) {
    bad(many ? "a string or a list of strings" : "a string");
  }
  return v;
}

// An object for an option that takes a list ({"down_proj": 16} for
// --lora-rank-pattern) becomes its "KEY=VALUE" items in file order, which can
// matter (peft's patterns: the first matching key wins). Anything else as is.
nlohmann::json key_value_items(const nlohmann::ordered_json& v, const CLI::Option& opt) {
  if (!v.is_object() || opt.get_expected_max() <= 1) return nlohmann::json::parse(v.dump());
  nlohmann::json items = nlohmann::json::array();
  for (const auto& [k, e] : v.items()) items.push_back(k + "=" + (e.is_string() ? e.get<std::string>() : e.dump()));
  return items;
}

std::string flag_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string joined;
    for (auto& e : v) joined += (joined.empty() ? "" : ",") + flag_value(e);
    return joined;
  }
  return v.dump();
}

ConfigOrigin g_origin;

// `flag` stands in `text` at `at` as a whole option name (not a prefix of a longer one).
bool flag_at(const std::string& text, size_t at, const std::string& flag) {
  if (text.compare(at, flag.size(), flag) != 0) return false;
  const size_t end = at + flag.size();
  return end == text.size() || !(std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '-');
}

}  // namespace

const ConfigOrigin& config_origin() { return g_origin; }

std::string ConfigOrigin::locate(const std::string& message) const {
  // CLI11 starts a message with the flag, or with this prefix and then the flag.
  static const std::string kConvert = "Could not convert: ";
  const size_t at = message.rfind(kConvert, 0) == 0 ? kConvert.size() : 0;
  for (const auto& [flag, key] : key_of)
    if (flag_at(message, at, flag)) return path + ": key '" + key + "': " + message;
  return message;
}

std::vector<std::string> expand_config(CLI::App& app, std::vector<std::string> args) {
  // args[0] is the subcommand (when there is one); find --config among the rest.
  if (args.empty()) return args;
  CLI::App* sub = nullptr;
  for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; }))
    if (s->get_name() == args[0]) sub = s;
  if (!sub) return args;
  std::string path;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
    } else {
      rest.push_back(args[i]);
    }
  }
  if (path.empty()) return args;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, not a JSON config file");  // reading it throws
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open config file");
  nlohmann::ordered_json j;  // file order: an object value's entries keep it (below)
  try {
    j = nlohmann::ordered_json::parse(f);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": the top level must be an object of option names");
  const fs::path base = fs::path(path).parent_path();
  g_origin = ConfigOrigin{path, {}};
  std::set<std::string> given;
  for (auto& a : rest)
    if (a.rfind("--", 0) == 0) given.insert(a.substr(0, a.find('=')));
  std::vector<std::string> out{args[0]};
  for (auto& [key, ordered] : j.items()) {
    std::string name = "--" + key;
    for (auto& c : name)
      if (c == '_') c = '-';
    std::string negated = "--no-" + name.substr(2);
    if (given.count(name) || given.count(negated)) continue;  // the command line wins
    const CLI::Option* opt = sub->get_option_no_throw(name);
    if (!opt) opt = sub->get_option_no_throw(negated);
    if (!opt) throw Error(path + ": unknown option '" + key + "' for 'qtrain " + args[0] + "'");
    const nlohmann::json raw = key_value_items(ordered, *opt);
    const nlohmann::json val = check_type(path, key, raw, *opt);
    if (val.is_boolean() && opt->get_expected_max() == 0) {
      // true -> --flag; false -> --no-flag where such a flag exists (else the default holds).
      const std::string& flag = val.get<bool>() ? name : negated;
      if (sub->get_option_no_throw(flag)) {
        out.push_back(flag);
      } else if (!sub->get_option_no_throw(val.get<bool>() ? negated : name)) {
        throw Error(path + ": unknown option '" + key + "' for 'qtrain " + args[0] + "'");
      }
      continue;
    }
    if (!sub->get_option_no_throw(name)) throw Error(path + ": unknown option '" + key + "' for 'qtrain " + args[0] + "'");
    std::string v = flag_value(val);
    if (v.empty() || val.is_null()) continue;  // "" / null / []: leave the default
    std::string config_key = key;
    for (auto& c : config_key)
      if (c == '-') c = '_';
    if (kPathKeys.count(config_key)) v = resolve_path(config_key, v, base);
    out.push_back(name);
    g_origin.key_of[name] = key;
    if (val.is_array() && opt->get_expected_max() > 1) {
      // one argument per item: right for an option of a fixed count (--qablora-tile 8 4) and for a list
      for (const auto& e : val) out.push_back(flag_value(e));
    } else {
      out.push_back(v);
    }
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace qtrain::launch
