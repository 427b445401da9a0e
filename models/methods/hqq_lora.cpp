// --method hqq-lora: LoRA on a base quantized with HQQ (half-quadratic
// quantization, as the PyPI hqq package: groups of 64, zero point refined by
// its proximal solver), 4 or 2 bits (--hqq-bits), + peft-style LoRA.
#include <string>

#include "models/hqq_weight.h"
#include "models/method.h"
#include "models/model.h"

QT_REGISTER_METHOD(hqq_lora,
                   {.name = "hqq-lora",
                    .help = "LoRA on an HQQ base (half-quadratic quantization, groups of 64, --hqq-bits 4|2)",
                    .make_base = [](const qtrain::BaseRequest& r) -> std::unique_ptr<qtrain::BaseWeight> {
                      if (r.opt.hqq_bits != 4 && r.opt.hqq_bits != 2)
                        throw qtrain::Error("hqq-lora: field 'hqq_bits' is " + std::to_string(r.opt.hqq_bits) +
                                            ", not 4 or 2");
                      return std::make_unique<qtrain::HqqWeight>(r.load_f32(), r.opt.hqq_bits);
                    },
                    // codes + an F32 scale and zero per group of 64
                    .base_bits = [](const qtrain::ModelOptions& o) { return o.hqq_bits + 64.0 / 64; }});
