// CorpusReport: what `qtrain data inspect` prints — per split, the files,
// records (or tokens for .bin shards), malformed lines, and the fields seen.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace qtrain {

// split "" = every split that exists (train, valid, test); a plain file is one split "all".
// Malformed lines are counted and the first few listed as "file:line: reason".
nlohmann::json inspect_corpus(const std::string& path, const std::string& split);

}  // namespace qtrain
