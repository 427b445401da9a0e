// libFuzzer target for the GGUF header parser (models/gguf_file.cpp) and the
// block dequantizers it feeds. Any input must either parse or throw a
// BadInput qtrain::Error; crashes, sanitizer reports and other exceptions are bugs.
// Not part of the CMake build. Build and run (clang with libFuzzer):
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/gguf_fuzz.cpp models/gguf_file.cpp kernels/quant/gguf_blocks.cpp \
//     kernels/dtype.cpp kernels/error.cpp -o build/gguf_fuzz
//   mkdir -p build/gguf_corpus && cp tests/fixtures/gguf/*.gguf build/gguf_corpus/
//   build/gguf_fuzz build/gguf_corpus -max_len=65536 -max_total_time=300
#include <cstdint>
#include <vector>

#include "kernels/error.h"
#include "models/gguf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
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
  } catch (const qtrain::Error& e) {
    // Bad input must be rejected as BadInput; anything else (an internal
    // QT_CHECK) is a bug the fuzzer should report.
    if (e.kind() != qtrain::ErrorKind::BadInput) __builtin_trap();
  }
  return 0;
}
