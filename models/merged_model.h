// A model with its adapters folded into the base weights (W + s*B*A), rebuilt
// as a plain model: generation and evaluation "merged", the way the weights
// run once exported with --merge. A quantized base merges as dequant(W) + delta
// and is quantized again by the rebuilt model's method.
#pragma once
#include <memory>

#include "models/model.h"

namespace qtrain {

// `opt` says how to hold the rebuilt base (device, method); its targets are
// ignored: the result has no adapter.
std::unique_ptr<Model> merge_adapters_into_base(const Model& with_adapters, ModelOptions opt);

}  // namespace qtrain
