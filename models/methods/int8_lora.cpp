// --method int8-lora: LoRA on a vector-wise int8 base, LLM.int8 forward (outlier
// columns above --int8-threshold in F32), as bitsandbytes' 8-bit + peft.
#include "models/method.h"
#include "models/model.h"
#include "models/quant_weight.h"

QT_REGISTER_METHOD(int8_lora,
                   {.name = "int8-lora",
                    .help = "LoRA on an int8 base (LLM.int8 forward, outliers over --int8-threshold in F32)",
                    .make_base = [](const qtrain::BaseRequest& r) -> std::unique_ptr<qtrain::BaseWeight> {
                      return std::make_unique<qtrain::Int8Weight>(r.load_f32(), r.opt.int8_threshold);
                    },
                    // int8 codes, an F32 scale per row; outlier columns are a small share
                    .base_bits = [](const qtrain::ModelOptions&) { return 8.25; }});
