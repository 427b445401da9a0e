#include "data/shard_writer.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "data/corpus_files.h"
#include "data/row_source.h"
#include "data/token_shards.h"
#include "data/tokenizer.h"
#include "kernels/error.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

// OUT's shards of this prefix and split from an earlier run: <prefix>_<split>_NNNNNN.bin, as named below.
std::vector<fs::path> earlier_shards(const ShardJob& job) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(job.out_dir, ec)) return out;
  const std::string head = job.prefix + "_" + job.split + "_", tail = ".bin";
  for (const auto& e : fs::directory_iterator(job.out_dir)) {
    std::string n = e.path().filename().string();
    if (n.size() != head.size() + 6 + tail.size() || n.compare(0, head.size(), head) != 0 ||
        n.compare(head.size() + 6, tail.size(), tail) != 0)
      continue;
    auto digits = std::string_view(n).substr(head.size(), 6);
    if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string partial_name(const std::string& path) { return path + ".partial"; }

}  // namespace

ShardResult write_token_shards(const ShardJob& job, std::shared_ptr<const Tokenizer> tok) {
  auto files = corpus_files(job.path, job.split);
  for (const auto& f : files)
    if (is_token_shard(f)) throw Error(f + ": already a token shard");
  auto earlier = earlier_shards(job);
  if (!earlier.empty() && !job.overwrite)
    throw Error(job.out_dir + ": already holds " + std::to_string(earlier.size()) + " shard(s) of split '" + job.split +
                "' (" + earlier.front().string() + "): --overwrite replaces them, or choose another --out or --prefix");
  // An --out this run creates goes again when it fails before writing a shard: a failed run
  // leaves no empty folder behind (one that existed stays).
  const bool made_out = fs::create_directories(job.out_dir);
  const auto drop_out = [&] {
    std::error_code ec;
    if (made_out && fs::is_empty(job.out_dir, ec)) fs::remove(job.out_dir, ec);
  };
  EpochConfig e;
  e.seq_len = INT_MAX;  // one document per row, whole
  e.shuffle = false;
  e.pack = false;
  e.skip_bad_lines = job.skip_bad_lines;
  e.vocab_size = tok->vocab_size();
  e.eos_id = tok->eos_id();
  auto fmt = std::make_shared<RecordFormat>(record_kind_from_name(job.format), job.fields);
  TextRowSource src(files, e, fmt, tok);

  ShardResult res;
  std::unique_ptr<TokenShardWriter> w;
  auto close = [&] {
    if (w) w->close();
    w.reset();
  };
  try {
    Row row;
    while (src.next(&row)) {
      if (!w || w->size() >= job.shard_tokens) {
        close();
        char name[64];
        std::snprintf(name, sizeof(name), "_%06zu.bin", res.files.size());
        res.files.push_back((fs::path(job.out_dir) / (job.prefix + "_" + job.split + name)).string());
        w = std::make_unique<TokenShardWriter>(partial_name(res.files.back()), tok->vocab_size());
      }
      w->write(row.ids.data(), row.ids.size());
      res.tokens += int64_t(row.ids.size());
      ++res.documents;
    }
    close();
  } catch (...) {
    w.reset();
    std::error_code ec;
    for (const auto& f : res.files) fs::remove(partial_name(f), ec);
    drop_out();
    throw;
  }
  res.bad_lines = src.bad_lines();
  if (res.documents == 0) {
    drop_out();
    throw Error(job.path + ": split '" + job.split + "' has no documents to shard");
  }
  for (const auto& f : earlier) fs::remove(f);
  for (const auto& f : res.files) fs::rename(partial_name(f), f);
  return res;
}

}  // namespace qtrain
