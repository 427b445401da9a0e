// `--model random:<shape>` (llama-7b, llama-70b, ...): random weights made on
// the fly for benchmarks; see models/synthetic_model.cpp.
#pragma once
#include <string>

#include "models/weight_source.h"

namespace qtrain {

bool is_synthetic_model(const std::string& spec);
LoadedModel load_synthetic_model(const std::string& spec);
std::string synthetic_shapes();  // "smollm2-135m, llama-7b, ..."

}  // namespace qtrain
