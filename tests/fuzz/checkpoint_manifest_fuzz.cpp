// libFuzzer target for a checkpoint's manifest.json and state.json
// (trainer/checkpoint.cpp); the same input is given to both parsers.
#include "tests/fuzz/fuzz_util.h"
#include "trainer/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(qtrain::fuzz::as_text(data, size));
  qtrain::fuzz::parse_or_bad_input([&] { (void)qtrain::parse_checkpoint_manifest(text, "ckpt/manifest.json"); });
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::CheckpointState s;
    qtrain::parse_checkpoint_state(text, "ckpt/state.json", s);
  });
  return 0;
}
