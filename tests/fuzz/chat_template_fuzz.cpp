// libFuzzer target for the chat-template interpreter (data/chat_template*.cpp):
// templates come from model files, so any input must render or be rejected
// with a BadInput error (fuzz_util.h).
#include "data/chat_template.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::ChatTemplate t{std::string(qtrain::fuzz::as_text(data, size))};
    (void)t.render({{"system", "s"}, {"user", "Hi\n"}, {"assistant", " ok "}}, true, "<s>", "</s>");
  });
  return 0;
}
