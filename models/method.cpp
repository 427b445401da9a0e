#include "models/method.h"

#include <map>

#include "kernels/error.h"

namespace qtrain {

namespace {
// A function-local static: registrations run during static initialisation, in
// no particular order across files.
std::map<std::string, Method>& registry() {
  static std::map<std::string, Method> r;
  return r;
}
}  // namespace

void register_method(Method m) {
  QT_CHECK(!m.name.empty() && !registry().count(m.name), "method '" + m.name + "' registered twice");
  QT_CHECK(!(m.trains_base && (m.make_base || m.make_adapter)), "method '" + m.name + "': a full fine-tune has no frozen base");
  std::string name = m.name;
  registry().emplace(name, std::move(m));
}

const Method& find_method(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) throw Error("unknown --method '" + name + "' (this build has: " + method_list() + ")");
  return it->second;
}

std::vector<std::string> method_names() {
  std::vector<std::string> n;
  for (auto& [k, m] : registry()) n.push_back(k);
  return n;
}

std::string method_list() {
  std::string s;
  for (auto& n : method_names()) s += (s.empty() ? "" : " | ") + n;
  return s;
}

std::string method_help() {
  std::string s;
  for (auto& [k, m] : registry()) s += (s.empty() ? "  " : "\n  ") + k + ": " + m.help;
  return s;
}

}  // namespace qtrain
