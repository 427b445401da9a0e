// --method gguf-lora: LoRA on a GGUF base kept in its own blocks (Q4_0, Q4_1,
// Q8_0, K-quants ...): the model holds the file's blocks, not four bytes per
// weight; each product dequantizes one matrix into a scratch. Tensors the file stores
// as plain floats stay dense. The GPU takes Q4_0, Q4_1, Q8_0 and F16 blocks.
#include "models/gguf_block_weight.h"
#include "models/gguf_file.h"
#include "models/method.h"
#include "models/model.h"

namespace qtrain {
namespace {

std::unique_ptr<BaseWeight> gguf_base(const BaseRequest& r) {
  PackedTensor p = r.src.load_packed(r.name);
  if (p.format == "gguf") return std::make_unique<GgufBlockWeight>(p);
  if (!p.format.empty())
    throw Error(r.src.path() + ": '" + r.name + "' is stored as " + p.format + ", not GGUF blocks");
  if (!is_gguf_path(r.src.path()))
    throw Error("--method gguf-lora keeps a GGUF base in its blocks: " + r.src.path() + " is not a .gguf model");
  return std::make_unique<DenseWeight>(r.load_f32().to(r.opt.device, r.opt.device == Device::CUDA ? DType::BF16 : DType::F32));
}

}  // namespace
}  // namespace qtrain

QT_REGISTER_METHOD(gguf_lora, {.name = "gguf-lora",
                               .help = "LoRA on a .gguf base kept in its GGUF blocks (dequantized per product)",
                               .make_base = qtrain::gguf_base,
                               // Q8_0's 8.5 bits, the largest block type; Q4 files take about half
                               .base_bits = [](const qtrain::ModelOptions&) { return 8.5; }});
