// libFuzzer target for HF tokenizer.json (data/tokenizer_files.cpp), with the
// tokenizer_config.json beside it after the first NUL byte of the input.
// A tokenizer that loads must also encode and decode a fixed text.
#include "data/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    auto [json, config] = qtrain::fuzz::split_at_nul(qtrain::fuzz::as_text(data, size));
    auto tok = qtrain::Tokenizer::from_tokenizer_json(json, config, "tok/tokenizer.json");
    std::vector<int32_t> ids = tok->encode("Hello world<|endoftext|> 123  \xc3\xa9t\xc3\xa9\n", true);
    (void)tok->decode(ids);
  });
  return 0;
}
