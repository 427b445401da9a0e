#include "data/shard_writer.h"

#include <climits>
#include <cstdio>
#include <filesystem>

#include "data/corpus_files.h"
#include "data/row_source.h"
#include "data/token_shards.h"
#include "data/tokenizer.h"
#include "kernels/error.h"

namespace qtrain {

ShardResult write_token_shards(const ShardJob& job, std::shared_ptr<const Tokenizer> tok) {
  auto files = corpus_files(job.path, job.split);
  for (const auto& f : files)
    if (is_token_shard(f)) throw Error(f + ": already a token shard");
  std::filesystem::create_directories(job.out_dir);
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
  Row row;
  while (src.next(&row)) {
    if (!w || w->size() >= job.shard_tokens) {
      close();
      char name[64];
      std::snprintf(name, sizeof(name), "_%06zu.bin", res.files.size());
      res.files.push_back((std::filesystem::path(job.out_dir) / (job.prefix + "_" + job.split + name)).string());
      w = std::make_unique<TokenShardWriter>(res.files.back(), tok->vocab_size());
    }
    w->write(row.ids.data(), row.ids.size());
    res.tokens += int64_t(row.ids.size());
    ++res.documents;
  }
  close();
  res.bad_lines = src.bad_lines();
  if (res.documents == 0) throw Error(job.path + ": split '" + job.split + "' has no documents to shard");
  return res;
}

}  // namespace qtrain
