#include "data/corpus_inspect.h"

#include <filesystem>
#include <set>
#include <utility>

#include "data/corpus_files.h"
#include "data/gz_lines.h"
#include "data/record_format.h"
#include "data/token_shards.h"
#include "kernels/error.h"

namespace qtrain {

using nlohmann::json;

namespace {

constexpr int kListedMalformed = 10;

json inspect_files(const std::vector<std::string>& files, std::set<std::string>& fields, json& malformed_list) {
  int64_t records = 0, malformed = 0, tokens = 0, blank = 0;
  RecordFormat fmt(RecordKind::Auto, "code");
  for (const auto& f : files) {
    if (is_token_shard(f)) {
      tokens += TokenShardReader(f).size();
      continue;
    }
    LineReader r(f);
    std::string_view line;
    while (r.next(line)) {
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
        ++blank;
        continue;
      }
      std::string where = f + ":" + std::to_string(r.line_no());
      try {
        fmt.parse(line, where);  // full check: UTF-8, JSON, a known record shape
        ++records;
      } catch (const Error& e) {
        ++malformed;
        if (malformed_list.size() < kListedMalformed) malformed_list.push_back(e.what());
      }
      auto j = json::parse(line, nullptr, false);
      if (j.is_object())
        for (auto& [k, v] : j.items()) fields.insert(k);
    }
  }
  json out = {{"files", files.size()}, {"records", records}, {"malformed", malformed}};
  if (tokens) out["tokens"] = tokens;
  if (blank) out["blank_lines"] = blank;
  return out;
}

}  // namespace

json inspect_corpus(const std::string& path, const std::string& split) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path + ": no such file or directory");
  std::vector<std::string> splits;
  bool single = !std::filesystem::is_directory(path, ec);
  if (single) splits = {split.empty() ? "all" : split};
  else if (!split.empty()) splits = {split};
  else splits = {"train", "valid", "test"};
  std::vector<std::pair<std::string, std::vector<std::string>>> found;  // split -> its files
  for (const auto& s : splits) {
    try {
      found.push_back({s, single ? std::vector<std::string>{path} : corpus_files(path, s)});
    } catch (const Error&) {
      if (!split.empty()) throw;  // asked for this split: it must exist
    }
  }
  // A flat directory whose names mention no split gives every split all its files: one corpus,
  // reported once as "all" (as a single file is), not three times with each bad line counted thrice.
  if (split.empty() && found.size() == 3 && found[0].second == found[1].second && found[1].second == found[2].second)
    found = {{"all", found[0].second}};
  std::set<std::string> fields;
  json malformed = json::array(), per_split = json::object();
  int64_t total_malformed = 0;
  for (const auto& [s, files] : found) {
    per_split[s] = inspect_files(files, fields, malformed);
    total_malformed += per_split[s]["malformed"].get<int64_t>();
  }
  if (per_split.empty())
    throw Error(path + ": no data files for train, valid or test (expected <lang>/final/jsonl/<split>/*.jsonl.gz, or "
                ".jsonl/.jsonl.gz/.bin files)");
  return {{"path", path},
          {"splits", per_split},
          {"fields", std::vector<std::string>(fields.begin(), fields.end())},
          {"malformed_lines", total_malformed},
          {"first_malformed", malformed}};
}

}  // namespace qtrain
