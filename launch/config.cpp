// --config FILE.json: every long option can come from a JSON object with the
// same keys ('-' or '_'); flags given on the command line override the file.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/error.h"
#include "launch/commands.h"

namespace qtrain::launch {

namespace {

// CLI11 config reader for JSON objects: flattens one level of keys into items.
class JsonConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return "{}"; }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::stringstream ss;
    ss << input.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(std::string("config file: invalid JSON: ") + e.what());
    }
    if (!j.is_object()) throw Error("config file: the top level must be a JSON object of option names");
    std::vector<CLI::ConfigItem> items;
    for (auto& [key, val] : j.items()) {
      CLI::ConfigItem item;
      std::string name = key;
      for (auto& c : name)
        if (c == '_') c = '-';
      item.name = name;
      if (val.is_array()) {
        std::string joined;
        for (auto& v : val) joined += (joined.empty() ? "" : ",") + (v.is_string() ? v.get<std::string>() : v.dump());
        item.inputs = {joined};
      } else if (val.is_string()) {
        item.inputs = {val.get<std::string>()};
      } else if (val.is_boolean()) {
        item.inputs = {val.get<bool>() ? "true" : "false"};
      } else {
        item.inputs = {val.dump()};
      }
      items.push_back(item);
    }
    return items;
  }
};

}  // namespace

void add_config_option(CLI::App& sub) {
  sub.set_config("--config", "", "JSON file of options (same names as the flags); flags override it");
  sub.config_formatter(std::make_shared<JsonConfig>());
  sub.allow_config_extras(CLI::config_extras_mode::error);
}

}  // namespace qtrain::launch
