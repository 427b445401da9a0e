// Q-BLoRA as the paper runs it: QLoRA's base (NF4 with double quantization,
// bitsandbytes layout) with the Q-BLoRA adapter (models/adapters/qblora.h).
#include "models/method.h"
#include "models/model.h"
#include "models/quant_weight.h"

QT_REGISTER_METHOD(qblora, {.name = "qblora",
                            .help = "Q-BLoRA: QLoRA's NF4 + double-quant base with the qblora adapter "
                                    "(pool / repeat by --blora-lambda, rank lambda * --lora-r)",
                            .make_base = [](const qtrain::BaseRequest& r) -> std::unique_ptr<qtrain::BaseWeight> {
                              return std::make_unique<qtrain::Block4Weight>(r.load_f32(), qtrain::quant::Code4::NF4, true);
                            },
                            .adapter = "qblora",
                            .base_bits = [](const qtrain::ModelOptions&) { return 4 + 8.0 / 64 + 32.0 / (64 * 256); }});
