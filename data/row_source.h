// RowSource: one epoch of the global row order, the same on every rank.
// TextRowSource: files (order shuffled per epoch) -> lines through a seeded
// shuffle buffer -> records -> tokens -> packed seq_len windows (documents
// joined with EOS) or one document per row. ShardRowSource: seq_len windows
// of .bin token shards, in a seeded permutation, read by random access.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/gz_lines.h"
#include "data/permutation.h"
#include "data/record_format.h"
#include "data/token_shards.h"

namespace qtrain {

class Tokenizer;

class RowSource {
 public:
  virtual ~RowSource() = default;
  // The next row of the epoch into *row; row == nullptr skips it (another
  // rank's row: built only as far as needed to know where the next one starts).
  // false at the end of the epoch.
  virtual bool next(Row* row) = 0;
  virtual int64_t bad_lines() const { return 0; }
};

struct EpochConfig {
  int seq_len = 512;
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool shuffle = true;
  bool pack = true;
  bool keep_tail = false;     // emit the last partial window (one pass / eval) instead of dropping it
  bool skip_bad_lines = false;
  int vocab_size = 0;         // ids >= this are bad input
  int32_t eos_id = -1;
  int shuffle_buffer = 4096;  // lines
  size_t shuffle_buffer_bytes = 64u << 20;  // ... and at most this many bytes of them (long documents)
  int threads = 1;            // packed text: documents parsed and tokenized in parallel, order kept
  int group_size = 0;         // unpacked: > 0 sorts each run of this many documents by length (QLoRA's
                              // group_by_length), so batches hold similar lengths and pad little
  int source_max_len = 0;     // text records: at most this many prompt tokens (out of the loss); 0 = all
  int target_max_len = 0;     // ... and at most this many target tokens (in the loss, EOS included)
};

// Deterministic 64-bit generator (splitmix64): the same sequence on every
// platform and standard library, unlike std::uniform_int_distribution.
struct SeededRng {
  uint64_t s;
  explicit SeededRng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

class TextRowSource : public RowSource {
 public:
  TextRowSource(std::vector<std::string> files, const EpochConfig& cfg, std::shared_ptr<const RecordFormat> format,
                std::shared_ptr<const Tokenizer> tok);
  bool next(Row* row) override;
  int64_t bad_lines() const override { return bad_lines_; }
  // Largest line buffer of any file read so far (streaming-memory witness).
  size_t buffer_high_water() const { return high_water_; }

 private:
  struct Line {
    std::string text;
    int file;
    int64_t line_no;
  };
  bool read_line(Line& out);         // next line of the files, in file order
  bool next_line(Line& out);         // through the shuffle buffer
  bool next_example(Example& ex, bool want_tokens, Row* doc);  // false at end; skips bad lines when asked
  void tokenize(const Example& ex, const std::string& where, Row& doc) const;
  bool fill_docs();  // packed mode: the next chunk of documents, tokenized (in parallel) into docs_

  std::vector<std::string> files_;
  EpochConfig cfg_;
  std::shared_ptr<const RecordFormat> format_;
  std::shared_ptr<const Tokenizer> tok_;
  SeededRng rng_;
  size_t file_ = 0;
  std::unique_ptr<LineReader> reader_;
  std::vector<Line> buffer_;
  size_t buffer_bytes_ = 0;
  bool next_grouped(Row* row);
  std::vector<Row> docs_;  // packed mode: tokenized documents not yet packed; grouped: the sorted group
  size_t docs_at_ = 0;
  Row pending_;         // packed mode: tokens not yet in a row
  size_t pending_at_ = 0;
  bool done_ = false;
  int64_t bad_lines_ = 0;
  size_t high_water_ = 0;
};

class ShardRowSource : public RowSource {
 public:
  ShardRowSource(const std::vector<std::string>& files, const EpochConfig& cfg);
  bool next(Row* row) override;

 private:
  void read(int64_t begin, int64_t n, int32_t* out) const;  // over the concatenated shards
  EpochConfig cfg_;
  std::vector<std::unique_ptr<TokenShardReader>> shards_;
  std::vector<int64_t> starts_;  // first global token of each shard
  int64_t total_ = 0, n_rows_ = 0, at_ = 0;
  std::unique_ptr<IndexPermutation> order_;  // window permutation (null: in order); O(1) memory
};

}  // namespace qtrain
