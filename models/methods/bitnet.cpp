// --method bitnet: BitNet b1.58 quantization-aware training of every block
// Linear (models/bitlinear_weight.h), with lambda-warmup over --bitnet-warmup steps.
#include "models/bitlinear_weight.h"
#include "models/method.h"
#include "models/model.h"

QT_REGISTER_METHOD(bitnet, {.name = "bitnet",
                            .help = "BitNet b1.58 QAT: every block Linear trains through ternary weights and 8-bit "
                                    "activations (SubLN, straight-through), blended in over --bitnet-warmup steps",
                            .trains_base = true,
                            .wrap_trainable = [](qtrain::Tensor master, const qtrain::ModelOptions& o)
                                -> std::unique_ptr<qtrain::BaseWeight> {
                              return std::make_unique<qtrain::BitLinearWeight>(master, o.bitnet_warmup, o.bitnet_subln);
                            }});
