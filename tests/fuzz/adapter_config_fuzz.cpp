// libFuzzer target for the PEFT adapter_config.json reader (models/peft_io.cpp,
// parse_peft_adapter_config), rank_pattern/alpha_pattern keys included: they
// are regular expressions, matched against module names as a model build does.
#include "models/adapters/lora_patterns.h"
#include "models/peft_io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::PeftAdapter a =
        qtrain::parse_peft_adapter_config(std::string(qtrain::fuzz::as_text(data, size)), "adapter_config.json");
    for (const char* module : {"model.layers.0.self_attn.q_proj", "transformer.h.1.mlp.c_fc"})
      (void)qtrain::lora_options_for(a.lora, module);
  });
  return 0;
}
