// libFuzzer target for the chat-template interpreter (data/chat_template*.cpp):
// templates come from model files, so any input must render or throw a
// BadInput qtrain::Error. Not part of the CMake build. Build and run:
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/chat_template_fuzz.cpp data/chat_template.cpp data/chat_template_parse.cpp \
//     data/chat_template_value.cpp kernels/error.cpp -o build/chat_template_fuzz
//   mkdir -p build/chat_corpus && build/chat_template_fuzz -runs=0 build/chat_corpus
//   build/chat_template_fuzz build/chat_corpus -max_len=4096 -max_total_time=300 -timeout=10
#include <cstdint>
#include <string>

#include "data/chat_template.h"
#include "kernels/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    qtrain::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size));
    (void)t.render({{"system", "s"}, {"user", "Hi\n"}, {"assistant", " ok "}}, true, "<s>", "</s>");
  } catch (const qtrain::Error& e) {
    if (e.kind() != qtrain::ErrorKind::BadInput) __builtin_trap();
  }
  return 0;
}
