// What a stored adapter (models/peft_io.h) fixes about the model built to hold
// it, shared by the trainer's build (trainer/setup.cpp) and the tests.
#pragma once
#include "models/model.h"
#include "models/peft_io.h"

namespace qtrain {

// opt with the adapter's type, LoRA options (rank, alpha, patterns) and
// modules; an IA3 adapter's feedforward modules too. The rest of opt stays.
inline ModelOptions with_adapter_options(ModelOptions opt, const PeftAdapter& a) {
  opt.adapter_type = a.type;
  opt.lora = a.lora;
  opt.targets = a.modules;
  if (a.type == "ia3") opt.ia3_feedforward = a.ia3_feedforward;
  return opt;
}

}  // namespace qtrain
