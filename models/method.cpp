#include "models/method.h"

#include "models/registry.h"

namespace qtrain {

namespace {
// A function-local static: registrations run during static initialisation, in
// no particular order across files.
Registry<Method>& registry() {
  static Registry<Method> r("--method");
  return r;
}
}  // namespace

void register_method(Method m) {
  QT_CHECK(!(m.trains_base && m.make_base), "method '" + m.name + "': a full fine-tune has no frozen base");
  registry().add(std::move(m));
}

const Method& find_method(const std::string& name) { return registry().find(name); }
std::vector<std::string> method_names() { return registry().names(); }
std::string method_list() { return registry().list(); }
std::string method_help() { return registry().help(); }

}  // namespace qtrain
