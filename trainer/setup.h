// The glue between loaders and the data layer that neither may own:
// picking the device, building the tokenizer a model carries, and building
// the model for a method.
#pragma once
#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "models/model.h"
#include "models/peft_io.h"

namespace qtrain {

// "auto" -> CUDA when a GPU is usable, else CPU; "cpu"; "cuda" (an error without a GPU).
Device resolve_device(const std::string& name);

// The model's tokenizer: `override_path` if given, else what the loader found
// (an HF dir's tokenizer files, or a GGUF's embedded vocabulary); null if none.
std::shared_ptr<const Tokenizer> make_tokenizer(const TokenizerSource& src, const std::string& override_path,
                                                const std::string& model_label);

// Dense bf16 tensor-core peak of a GPU by name (H100/H200 SXM 989 TFLOP/s,
// A100 312), for MFU; 0 when unknown.
double peak_bf16_flops(const std::string& gpu_name);

// A line like peft's print_trainable_parameters().
std::string describe_params(const Model& m);

}  // namespace qtrain
