#include "models/adapters/adapter_type.h"

namespace qtrain {

namespace {
Registry<AdapterType>& registry() {
  static Registry<AdapterType> r("--adapter-type");
  return r;
}
}  // namespace

void register_adapter_type(AdapterType t) {
  QT_CHECK(bool(t.make), "adapter type '" + t.name + "' has no factory");
  registry().add(std::move(t));
}
const AdapterType& find_adapter_type(const std::string& name) { return registry().find(name); }
std::string adapter_type_list() { return registry().list(); }
std::string adapter_type_help() { return registry().help(); }

}  // namespace qtrain
