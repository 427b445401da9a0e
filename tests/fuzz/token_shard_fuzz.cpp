// libFuzzer target for the llm.c-style .bin token shard header
// (data/token_shards.cpp): the input is a whole shard file.
#include "data/token_shards.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qtrain::fuzz::parse_or_bad_input([&] {
    qtrain::TokenShardHeader h = qtrain::parse_token_shard_header(data, size, int64_t(size), "fuzz.bin");
    // The header is checked against the file size: every token it counts is in the input.
    if (1024 + h.n_tokens * h.bytes_per_token != int64_t(size)) __builtin_trap();
  });
  return 0;
}
