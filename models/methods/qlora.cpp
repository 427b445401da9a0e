// The bitsandbytes 4-bit family: LoRA on a base quantized on load to NF4 or
// FP4 in bitsandbytes' blockwise layout (blocks of 64), with or without double
// quantization of the block absmax (QLoRA = NF4 + double quant).
#include "models/method.h"
#include "models/model.h"
#include "models/quant_weight.h"

namespace qtrain {
namespace {

Method block4(const char* name, const char* help, quant::Code4 code, bool double_quant) {
  return {.name = name,
          .help = help,
          .make_base = [code, double_quant](const BaseRequest& r) -> std::unique_ptr<BaseWeight> {
            return std::make_unique<Block4Weight>(r.load_f32(), code, double_quant);
          },
          // 4-bit codes + one absmax per block of 64: 8-bit codes with an F32 scale per 256 (double quant), or F32
          .base_bits = [double_quant](const ModelOptions&) { return double_quant ? 4 + 8.0 / 64 + 32.0 / (64 * 256) : 4.5; }};
}

}  // namespace
}  // namespace qtrain

QT_REGISTER_METHOD(qlora, qtrain::block4("qlora", "QLoRA: LoRA on an NF4 base with double quantization (bitsandbytes layout)",
                                         qtrain::quant::Code4::NF4, true));
QT_REGISTER_METHOD(nf4_lora, qtrain::block4("nf4-lora", "LoRA on an NF4 base without double quantization",
                                            qtrain::quant::Code4::NF4, false));
QT_REGISTER_METHOD(qlora_fp4, qtrain::block4("qlora-fp4", "LoRA on an FP4 base with double quantization",
                                             qtrain::quant::Code4::FP4, true));
