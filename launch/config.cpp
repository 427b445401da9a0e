// --config FILE.json: every long option can come from a JSON object with the
// same keys ('-' or '_'); flags given on the command line override the file.
// The file is expanded into ordinary flags before CLI11 parses, so a config
// value and a flag go through exactly the same validation.
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

std::string flag_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string joined;
    for (auto& e : v) joined += (joined.empty() ? "" : ",") + flag_value(e);
    return joined;
  }
  return v.dump();
}

}  // namespace

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
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": the top level must be an object of option names");
  std::set<std::string> given;
  for (auto& a : rest)
    if (a.rfind("--", 0) == 0) given.insert(a.substr(0, a.find('=')));
  std::vector<std::string> out{args[0]};
  for (auto& [key, val] : j.items()) {
    std::string name = "--" + key;
    for (auto& c : name)
      if (c == '_') c = '-';
    bool is_bool = val.is_boolean();
    std::string negated = "--no-" + name.substr(2);
    if (given.count(name) || given.count(negated)) continue;  // the command line wins
    if (is_bool) {
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
    if (v.empty() || val.is_null()) continue;  // "" / null: leave the default
    out.push_back(name);
    out.push_back(v);
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace qtrain::launch
