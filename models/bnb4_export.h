// A merged model re-quantized to NF4/FP4 with double quantization, written in
// transformers' bitsandbytes 4-bit serialization: what
// `AutoModelForCausalLM.from_pretrained(dir)` loads as a QLoRA base (the
// config's quantization_config tells it how). Per quantized Linear `<m>`:
//   <m>.weight                                U8 [n/2, 1]  packed codes
//   <m>.weight.absmax                         U8 [blocks]  double-quantized absmax
//   <m>.weight.nested_absmax                  F32 [blocks/256]
//   <m>.weight.nested_quant_map               F32 [256]    the signed dynamic map
//   <m>.weight.quant_map                      F32 [16]     the 4-bit code
//   <m>.weight.quant_state.bitsandbytes__nf4  U8           JSON: type, blocksize, dtype, shape, nested_*
// Other tensors are written in BF16. Checked against transformers + bitsandbytes
// by tests/scripts/quant_requantize_bnb.sh.
#pragma once
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kernels/quant/nf4.h"
#include "kernels/tensor.h"

namespace qtrain {

// tensors: HF names -> F32 [out, in] (merged); `quantize`: the Linear weight names to
// re-quantize; config_json: the base's config.json, copied with quantization_config added.
void save_bnb4_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                     const std::set<std::string>& quantize, quant::Code4 code, const std::string& config_json);

}  // namespace qtrain
