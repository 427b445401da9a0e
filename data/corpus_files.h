// Which files make up a split: the CodeSearchNet release tree
// (<root>/<lang>/final/jsonl/<split>/<lang>_<split>_<N>.jsonl.gz, by N), a
// directory of .jsonl(.gz) or .bin files (those whose name mentions the split
// when any does), or one file. None -> Error naming the path and split.
#pragma once
#include <string>
#include <vector>

namespace qtrain {

std::vector<std::string> corpus_files(const std::string& path, const std::string& split);

// True when the file name ends in .bin (a token shard).
bool is_token_shard(const std::string& path);

}  // namespace qtrain
