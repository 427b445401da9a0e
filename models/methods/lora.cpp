// --method lora: LoRA adapters on a dense frozen base (F32 on the CPU, BF16 on the GPU).
#include "models/method.h"
#include "models/model.h"

QT_REGISTER_METHOD(lora, {.name = "lora",
                          .help = "LoRA adapters on the dense base (BF16 on the GPU)"});
