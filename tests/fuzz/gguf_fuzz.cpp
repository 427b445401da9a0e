// libFuzzer target for the GGUF header parser (models/gguf_file.cpp) and the
// block dequantizers it feeds. Any input is read or rejected with a BadInput
// error (fuzz_util.h).
#include <vector>

#include "models/gguf_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::GgufFile f("fuzz.gguf", data, size);
    // Touch what a loader would: typed getters and every tensor's first row.
    (void)f.get_string("general.architecture", "");
    (void)f.get_int("general.alignment", 32);
    for (const auto& t : f.tensors()) {
      const qtrain::GgmlTypeInfo& info = qtrain::ggml_type_info(t.type);
      if (!info.dequantizable || t.ne.empty() || t.ne[0] == 0 || t.ne[0] > 4096 || t.numel() == 0) continue;
      std::vector<float> row(size_t(t.ne[0]));
      qtrain::dequantize_row(t.type, f.tensor_data(t), row.data(), t.ne[0]);
    }
  });
  return 0;
}
