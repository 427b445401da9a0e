// --method full: every weight trains (no adapter, nothing frozen).
#include "models/method.h"

QT_REGISTER_METHOD(full, {.name = "full",
                          .help = "full fine-tune: every weight is a trainable F32 parameter",
                          .trains_base = true});
