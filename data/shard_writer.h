// Tokenizes a corpus split, in order, into llm.c-style .bin shards (each
// document followed by EOS), for `qtrain data shard`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qtrain {

class Tokenizer;

struct ShardJob {
  std::string path, split = "train", format = "auto", fields = "code";
  std::string out_dir, prefix = "data";
  int64_t shard_tokens = 100'000'000;  // tokens per .bin file
  bool skip_bad_lines = false;
  bool overwrite = false;  // replace OUT's earlier <prefix>_<split>_*.bin (else refused)
};

struct ShardResult {
  std::vector<std::string> files;
  int64_t documents = 0, tokens = 0, bad_lines = 0;
};

// Shards are written under temporary names and renamed once the whole split is done:
// a failure leaves no .bin behind, and with `overwrite` the earlier shards of the same
// prefix and split go only then, so OUT never mixes two runs' shards.
ShardResult write_token_shards(const ShardJob& job, std::shared_ptr<const Tokenizer> tok);

}  // namespace qtrain
