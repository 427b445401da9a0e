// libFuzzer target for the safetensors reader (models/safetensors.cpp): the
// 8-byte header length, the JSON header, dtypes, shapes and data_offsets.
// Any input is read or rejected with a BadInput error (fuzz_util.h).
#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::SafetensorsFile f("fuzz.safetensors", data, size);
    // What a loader does next: convert each (small) tensor, which reads every byte the offsets claim.
    for (const auto& e : f.entries())
      if (e.end - e.begin <= (size_t(1) << 16)) (void)f.load_f32(e.name);
    (void)f.metadata();
  });
  return 0;
}
