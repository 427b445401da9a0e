// --method bitnet-lora: LoRA adapters on a frozen BitNet b1.58 backbone
// (models/ternary_weight.h), the "adapters on a BitNet base" the seeds' study
// leaves as future work. The base is a ternary export (qtrain export --format
// ternary) read as stored, or a float checkpoint - a --method bitnet run's
// model/, whose latent weights quantize to exactly the ternary weights it
// trained through - quantized on load.
#include "kernels/quant/ternary.h"
#include "models/method.h"
#include "models/model.h"
#include "models/ternary_weight.h"

QT_REGISTER_METHOD(bitnet_lora,
                   {.name = "bitnet-lora",
                    .help = "LoRA on a frozen ternary (BitNet b1.58) base: a --format ternary export, or float weights "
                            "quantized on load (W2A8 products, SubLN per --bitnet-subln)",
                    .make_base = [](const qtrain::BaseRequest& r) -> std::unique_ptr<qtrain::BaseWeight> {
                      if (auto stored = qtrain::TernaryWeight::from_source(r.src, r.name, r.out, r.in)) return stored;
                      const qtrain::Tensor w = r.load_f32();
                      return std::make_unique<qtrain::TernaryWeight>(
                          qtrain::quant::quantize_ternary(w.f32(), r.out, r.in), r.opt.bitnet_subln);
                    },
                    .base_bits = [](const qtrain::ModelOptions&) { return 2.0; }});  // 2-bit ternary codes
