// libFuzzer target for the HF config.json reader (models/hf_config.cpp,
// ModelConfig::from_hf_json). Any input is read or rejected with a BadInput
// error (fuzz_util.h).
#include "models/model_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input(
      [&] { (void)qtrain::ModelConfig::from_hf_json_text(std::string(qtrain::fuzz::as_text(data, size)), "config.json"); });
  return 0;
}
