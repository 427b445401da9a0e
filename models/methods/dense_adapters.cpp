// --method ia3 / dora: the scaling adapters on the dense base, by name (any
// other base: --method qlora --adapter-type ia3, and so on).
#include "models/method.h"

QT_REGISTER_METHOD(ia3, {.name = "ia3",
                         .help = "IA3 on the dense base (= --method lora --adapter-type ia3)",
                         .adapter = "ia3"});
QT_REGISTER_METHOD(dora, {.name = "dora",
                          .help = "DoRA on the dense base (= --method lora --adapter-type dora)",
                          .adapter = "dora"});
