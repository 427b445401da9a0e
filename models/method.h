// A fine-tuning method: what `--method NAME` builds. Each method registers
// itself from its own file in models/methods/ (QT_REGISTER_METHOD): how the
// frozen base of a Linear is held, which adapter a targeted Linear gets, and
// whether the base itself trains. --help and every error list the registered
// names; no other code compares method strings.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/adapters/adapter.h"
#include "models/base_weight.h"
#include "models/weight_source.h"

namespace qtrain {

struct ModelOptions;

// What a method gets to build the frozen base of one Linear.
struct BaseRequest {
  const WeightSource& src;
  const std::string& name;                 // the weight's tensor name in src
  int64_t out, in;
  const std::function<Tensor()>& load_f32;  // the weight as F32 host [out, in] (GPT-2's Conv1D transposed)
  const ModelOptions& opt;
};

struct Method {
  std::string name;
  std::string help;          // one line: what the base is and what trains
  bool trains_base = false;  // full fine-tune: every weight is a parameter, no adapter
  // The frozen base of one Linear; unset = dense in the compute dtype.
  std::function<std::unique_ptr<BaseWeight>(const BaseRequest&)> make_base;
  // The adapter of a targeted Linear (`module`: its HF path, e.g. "model.layers.0.mlp.down_proj",
  // for adapters that treat modules differently, as IA3 does feed-forward ones); unset = none.
  std::function<std::unique_ptr<Adapter>(const std::string& module, int64_t in, int64_t out, const ModelOptions&)>
      make_adapter;
  bool quantizes_base() const { return bool(make_base); }
};

// Adds a method; a second method of the same name is an internal error.
void register_method(Method m);
// The method called `name`, or an Error listing every registered name.
const Method& find_method(const std::string& name);
std::vector<std::string> method_names();  // sorted
std::string method_list();                // "full | lora | qlora | ..." for --help and errors
std::string method_help();                // one "name: help" line per method

}  // namespace qtrain

// At namespace scope in a method's own file, with designated initializers
// (members left out keep their defaults, so -Wmissing-field-initializers is
// off for the line). The library is linked whole (CMake: an object library),
// so this registration is never dropped.
#define QT_REGISTER_METHOD(ident, ...)                                                           \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmissing-field-initializers\"") \
      static const bool qt_method_registered_##ident = (::qtrain::register_method(__VA_ARGS__), true); \
  _Pragma("GCC diagnostic pop")
