#include "data/stream.h"

#include "data/corpus_files.h"
#include "data/tokenizer.h"
#include "kernels/error.h"

namespace qtrain {

namespace {
// The kind of the first record that parses (Auto when none does): decides
// whether the data is pre-tokenized before any row is made.
RecordKind sniff_kind(const std::string& file) {
  LineReader r(file);
  std::string_view line;
  for (int i = 0; i < 100 && r.next(line); ++i) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) return RecordFormat::detect(j);
  }
  return RecordKind::Auto;
}
}  // namespace

Stream::Stream(const StreamConfig& cfg, std::shared_ptr<const Tokenizer> tok) : cfg_(cfg), tok_(std::move(tok)) {
  if (cfg_.seq_len < 2) throw Error("--seq-len must be at least 2, got " + std::to_string(cfg_.seq_len));
  if (cfg_.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (cfg_.source_max_len < 0 || cfg_.target_max_len < 0)
    throw Error("--source-max-len and --target-max-len must be >= 0 (0 = no limit)");
  if (cfg_.world < 1 || cfg_.rank < 0 || cfg_.rank >= cfg_.world)
    throw Error("data stream: rank " + std::to_string(cfg_.rank) + " of world " + std::to_string(cfg_.world));
  files_ = corpus_files(cfg_.path, cfg_.split);
  shards_ = cfg_.format == "bin" || (cfg_.format == "auto" && is_token_shard(files_.front()));
  for (const auto& f : files_)
    if (is_token_shard(f) != shards_)
      throw Error(f + ": split '" + cfg_.split + "' mixes .bin token shards and JSON-lines files");
  if (!shards_) {
    RecordKind kind = record_kind_from_name(cfg_.format);
    format_ = std::make_shared<RecordFormat>(kind, cfg_.fields, cfg_.chat);
    RecordKind first = kind == RecordKind::Auto ? sniff_kind(files_.front()) : kind;
    if (first == RecordKind::InputIds) cfg_.pack = false;  // each line is one sequence, used as is
  }
  vocab_size_ = cfg_.vocab_size > 0 ? cfg_.vocab_size : (tok_ ? tok_->vocab_size() : 0);
  if (vocab_size_ <= 0) throw Error("data stream: no tokenizer and no vocab_size: cannot validate token ids");
  eos_id_ = tok_ ? tok_->eos_id() : -1;
  pad_id_ = eos_id_ >= 0 ? eos_id_ : 0;
  src_ = make_source(0);
}

Stream::~Stream() { stop(); }

std::unique_ptr<RowSource> Stream::make_source(int64_t epoch) const {
  EpochConfig e;
  e.seq_len = cfg_.seq_len;
  e.seed = cfg_.seed;
  e.epoch = epoch;
  e.shuffle = cfg_.shuffle;
  e.pack = cfg_.pack;
  e.keep_tail = !cfg_.loop;
  e.skip_bad_lines = cfg_.skip_bad_lines;
  e.vocab_size = vocab_size_;
  e.eos_id = eos_id_;
  e.shuffle_buffer = cfg_.shuffle_buffer;
  e.threads = cfg_.loader_threads;
  e.source_max_len = cfg_.source_max_len;
  e.target_max_len = cfg_.target_max_len;
  // HF's megabatch: 50 global batches. Depends on the global batch W*B, never on W alone.
  if (cfg_.group_by_length && !cfg_.pack) e.group_size = 50 * cfg_.world * cfg_.batch_size;
  if (shards_) return std::make_unique<ShardRowSource>(files_, e);
  return std::make_unique<TextRowSource>(files_, e, format_, tok_);
}

bool Stream::next_global_row(Row* row) {
  while (true) {
    if (ended_) return false;
    if (src_->next(row)) {
      ++prod_.row;
      ++rows_this_epoch_;
      return true;
    }
    if (rows_this_epoch_ == 0 && prod_.row == 0)
      throw Error(cfg_.path + ": split '" + cfg_.split + "' yields no rows" +
                  (src_->bad_lines() ? " (" + std::to_string(src_->bad_lines()) + " bad lines skipped)" : "") +
                  (cfg_.pack ? " (fewer tokens than one seq_len window?)" : ""));
    if (!cfg_.loop) {
      ended_ = true;
      return false;
    }
    bad_before_ += src_->bad_lines();
    ++prod_.epoch;
    prod_.row = 0;
    rows_this_epoch_ = 0;
    src_ = make_source(prod_.epoch);
  }
}

Stream::Item Stream::produce() {
  const int B = cfg_.batch_size, W = cfg_.world;
  std::vector<Row> mine;
  int got = 0;
  for (int i = 0; i < W * B; ++i) {
    bool is_mine = i / B == cfg_.rank;
    Row row;
    if (!next_global_row(is_mine ? &row : nullptr)) break;
    ++got;
    if (is_mine) mine.push_back(std::move(row));
  }
  Item item;
  if (got > 0 && mine.empty()) mine.push_back(Row{{pad_id_}, {0}});  // keep ranks in step at the very end
  int T = cfg_.seq_len;
  if (!cfg_.pack) {  // padded to the longest row (input_ids rows may exceed seq_len: used as is)
    T = 1;
    for (const auto& r : mine) T = std::max<int>(T, int(r.ids.size()));
  }
  if (!mine.empty()) item.batch = make_batch(mine, T, pad_id_);
  item.after = prod_;
  item.bad_lines = bad_before_ + src_->bad_lines();
  return item;
}

void Stream::loader_loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || int(queue_.size()) < std::max(cfg_.prefetch, 1); });
      if (stop_) return;
    }
    Item item;
    try {
      item = produce();
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    bool end = item.batch.B == 0;
    queue_.push_back(std::move(item));
    cv_.notify_all();
    if (end) return;
  }
}

void Stream::start() {
  if (running_) return;
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { loader_loop(); });
}

void Stream::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  running_ = false;
  queue_.clear();
  error_ = nullptr;
}

Batch Stream::next() {
  Item item;
  if (cfg_.prefetch <= 0) {
    item = produce();
  } else {
    start();
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !queue_.empty() || error_; });
    if (queue_.empty() && error_) std::rethrow_exception(error_);
    item = std::move(queue_.front());
    if (item.batch.B != 0) queue_.pop_front();  // the end marker stays: next() keeps returning B==0
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lk(mu_);
  consumed_ = item.after;
  bad_consumed_ = item.bad_lines;
  return std::move(item.batch);
}

nlohmann::json Stream::state() const {
  std::lock_guard<std::mutex> lk(mu_);
  return {{"format", "qtrain.data_stream.v1"}, {"epoch", consumed_.epoch}, {"row", consumed_.row},
          {"seq_len", cfg_.seq_len},           {"pack", cfg_.pack},          {"seed", cfg_.seed},
          {"shuffle", cfg_.shuffle},           {"bad_lines", bad_consumed_},
          {"group_size", cfg_.group_by_length ? 50 * cfg_.world * cfg_.batch_size : 0},
          {"source_max_len", cfg_.source_max_len}, {"target_max_len", cfg_.target_max_len}};
}

void Stream::restore(const nlohmann::json& s) {
  if (!s.is_object() || s.value("format", "") != "qtrain.data_stream.v1")
    throw Error("data stream state: not a qtrain.data_stream.v1 object");
  auto mismatch = [&](const char* key, const nlohmann::json& mine) {
    if (s.contains(key) && s[key] != mine)
      throw Error(std::string("data stream state: saved with ") + key + "=" + s[key].dump() + ", now " + mine.dump() +
                  "; the row order would differ");
  };
  mismatch("seq_len", cfg_.seq_len);
  mismatch("pack", cfg_.pack);
  mismatch("seed", cfg_.seed);
  mismatch("shuffle", cfg_.shuffle);
  mismatch("group_size", cfg_.group_by_length ? 50 * cfg_.world * cfg_.batch_size : 0);
  mismatch("source_max_len", cfg_.source_max_len);  // absent from older states: they had no limits
  mismatch("target_max_len", cfg_.target_max_len);
  stop();
  Position p{s.at("epoch").get<int64_t>(), s.at("row").get<int64_t>()};
  ended_ = false;
  prod_ = {p.epoch, 0};
  rows_this_epoch_ = 0;
  bad_before_ = 0;
  src_ = make_source(p.epoch);
  for (int64_t i = 0; i < p.row; ++i)  // replay the epoch up to the row (skimming: no batches built)
    if (!next_global_row(nullptr)) break;
  bad_before_ = s.value("bad_lines", int64_t(0)) - src_->bad_lines();
  consumed_ = prod_;
  bad_consumed_ = s.value("bad_lines", int64_t(0));
}

int64_t Stream::epoch() const {
  std::lock_guard<std::mutex> lk(mu_);
  return consumed_.epoch;
}

int64_t Stream::bad_lines() const {
  std::lock_guard<std::mutex> lk(mu_);
  return bad_consumed_;
}

int64_t Stream::global_rows() const {
  std::lock_guard<std::mutex> lk(mu_);
  return consumed_.row;
}

}  // namespace qtrain
