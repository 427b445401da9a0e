// A fine-tuning method: what `--method NAME` builds. Each method registers
// itself from its own file in models/methods/ (QT_REGISTER_METHOD): how the
// frozen base of a Linear is held, which adapter type a targeted Linear gets by
// default, and whether the base itself trains. --help and every error list the registered
// names; no other code compares method strings.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/adapters/adapter.h"
#include "models/base_weight.h"
#include "models/registry.h"
#include "models/weight_source.h"

namespace qtrain {

struct ModelOptions;

// What a method decided about the whole model before building any base
// (Method::plan_bases); each method defines its own subclass.
struct BasePlan {
  virtual ~BasePlan() = default;
};

// What a method gets to build the frozen base of one Linear.
struct BaseRequest {
  const WeightSource& src;
  const std::string& name;                 // the weight's tensor name in src
  int64_t out, in;
  const std::function<Tensor()>& load_f32;  // the weight as F32 host [out, in] (GPT-2's Conv1D transposed)
  const ModelOptions& opt;
  const BasePlan* plan = nullptr;           // what plan_bases returned, if the method has one
};

struct Method {
  std::string name;
  std::string help;          // one line: what the base is and what trains
  bool trains_base = false;  // full fine-tune: every weight is a parameter, no adapter
  // The frozen base of one Linear; unset = dense in the compute dtype.
  std::function<std::unique_ptr<BaseWeight>(const BaseRequest&)> make_base;
  // Optional: sees every frozen Linear's request (each load_f32 loads afresh,
  // nothing is kept) before any make_base, for a decision that spans the model
  // (LowRA's one bit budget over all channels); the result reaches make_base as
  // BaseRequest::plan.
  std::function<std::shared_ptr<const BasePlan>(const std::vector<BaseRequest>&)> plan_bases;
  // The LoftQ rounds (models/loftq.h) when --loftq-iters is left at its default
  // (-1); part of the method's recipe (LowRA: 5).
  int loftq_iters = 0;
  // trains_base only: how a Linear's trainable F32 weight is used (BitNet's
  // BitLinear quantizes it in the product); unset = a plain dense weight.
  std::function<std::unique_ptr<BaseWeight>(Tensor master, const ModelOptions&)> wrap_trainable;
  // The adapter type a targeted Linear gets (models/adapters/adapter_type.h)
  // unless --adapter-type picks another; ignored when trains_base.
  std::string adapter = "lora";
  // Bits a frozen base weight takes on the GPU, scales and tables included,
  // for the memory estimate before loading (trainer/memory_plan.h); unset = 16 (BF16).
  std::function<double(const ModelOptions&)> base_bits;
  bool quantizes_base() const { return bool(make_base); }
  // Trainable plain dense weights, whose GPU products read BF16 copies of the F32
  // masters (ParamSet::enable_compute_copy, 2 bytes more a parameter).
  bool uses_compute_copy() const { return trains_base && !wrap_trainable; }
};

// Adds a method; a second method of the same name is an internal error.
void register_method(Method m);
// The method called `name`, or an Error listing every registered name.
const Method& find_method(const std::string& name);
std::vector<std::string> method_names();  // sorted
std::string method_list();                // "full | lora | qlora | ..." for --help and errors
std::string method_help();                // one "name: help" line per method

}  // namespace qtrain

// In a method's own file, at namespace scope (see QT_REGISTER).
#define QT_REGISTER_METHOD(ident, ...) QT_REGISTER(::qtrain::register_method, method_##ident, __VA_ARGS__)
