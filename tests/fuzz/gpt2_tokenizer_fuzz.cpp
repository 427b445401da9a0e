// libFuzzer target for GPT-2's tokenizer files (data/tokenizer_files.cpp):
// encoder.json and vocab.bpe, given as one input split at the first NUL byte.
// A tokenizer that loads must also encode and decode a fixed text.
#include "data/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    auto [vocab, merges] = qtrain::fuzz::split_at_nul(qtrain::fuzz::as_text(data, size));
    auto tok = qtrain::Tokenizer::from_gpt2_files(vocab, merges, "encoder.json", "vocab.bpe");
    std::vector<int32_t> ids = tok->encode("Hello world<|endoftext|> 123  \xc3\xa9t\xc3\xa9\n", true);
    (void)tok->decode(ids);
  });
  return 0;
}
