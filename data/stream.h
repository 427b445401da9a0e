// Stream: the batches one rank trains on.
//
// Every rank walks the same global row order (RowSource, data/row_source.h),
// which depends on the data, seq_len, seed and epoch but never on the world
// size. Global step s holds rows [s*W*B, (s+1)*W*B); rank r keeps rows
// [s*W*B + r*B, s*W*B + (r+1)*B) and only skims the others (no batch is built
// for them; .bin shards are not even read). So 1 rank x batch 8 trains on the
// same rows per step as 2 ranks x batch 4, and the position — (epoch, global
// row) — resumes exactly at another world size. Memory is bounded by the
// shuffle buffer and one window, whatever the corpus size. A loader thread
// prepares `prefetch` batches ahead.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "data/row_source.h"

namespace qtrain {

class Tokenizer;
class ChatRenderer;

struct StreamConfig {
  std::string path;              // file or directory (CodeSearchNet tree, .jsonl(.gz), .bin shards)
  std::string split = "train";
  std::string format = "auto";   // auto | codesearchnet | instruct | chat | text | input_ids | bin
  std::string fields = "code";   // CodeSearchNet: "code" or "docstring-code" (docstring -> code instruction pair)
  int seq_len = 512;
  int batch_size = 8;            // rows per rank per micro-batch
  int rank = 0, world = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  bool pack = true;              // join docs with EOS into seq_len windows; false: one doc per row, padded
  bool loop = true;              // false: one pass, next() returns B==0 at the end (eval)
  bool skip_bad_lines = false;
  int prefetch = 4;              // batches prepared ahead on the loader thread (0: none, synchronous)
  int vocab_size = 0;            // 0: the tokenizer's; ids >= it are bad input
  int shuffle_buffer = 4096;     // lines held for the seeded shuffle
  bool group_by_length = false;  // pack=false: sort runs of 50 global batches of documents by length (QLoRA)
  int source_max_len = 0;        // text records: keep at most this many prompt tokens (QLoRA; 0 = all)
  int target_max_len = 0;        // ... and this many target tokens, EOS included (0 = all); input_ids rows are kept whole
  int loader_threads = 4;        // packed text: threads that parse + tokenize documents (order kept)
  std::shared_ptr<const ChatRenderer> chat;  // chat template for `messages` (null: built-in ChatML)
};

class Stream {
 public:
  // tok may be null for .bin / input_ids data when cfg.vocab_size is set.
  Stream(const StreamConfig& cfg, std::shared_ptr<const Tokenizer> tok);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The next micro-batch of this rank. With loop=false, B==0 at the end; in
  // the last, partial global step a rank without rows gets one row with no
  // targets, so every rank runs the same number of steps.
  Batch next();
  nlohmann::json state() const;  // position after the last batch next() returned
  void restore(const nlohmann::json& s);
  int64_t epoch() const;
  int64_t bad_lines() const;     // lines skipped with skip_bad_lines so far
  int64_t global_rows() const;   // rows into the current epoch (consumed)

 private:
  struct Position {
    int64_t epoch = 0, row = 0;
  };
  struct Item {
    Batch batch;
    Position after;
    int64_t bad_lines = 0;
  };
  std::unique_ptr<RowSource> make_source(int64_t epoch) const;
  bool next_global_row(Row* row);  // producer side; false when a one-pass stream ends
  Item produce();
  void start();
  void stop();
  void loader_loop();

  StreamConfig cfg_;
  std::shared_ptr<const Tokenizer> tok_;
  std::vector<std::string> files_;
  bool shards_ = false;
  std::shared_ptr<const RecordFormat> format_;
  int vocab_size_ = 0;
  int32_t pad_id_ = 0, eos_id_ = -1;

  // producer state (loader thread)
  std::unique_ptr<RowSource> src_;
  Position prod_;
  int64_t rows_this_epoch_ = 0;
  int64_t bad_before_ = 0;  // bad lines of finished epochs
  bool ended_ = false;

  // consumer state
  Position consumed_;
  int64_t bad_consumed_ = 0;

  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false, running_ = false;
  std::exception_ptr error_;
};

}  // namespace qtrain
