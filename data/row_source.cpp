#include "data/row_source.h"

#include <algorithm>

#include "data/tokenizer.h"
#include "kernels/error.h"

namespace qtrain {

namespace {

uint64_t epoch_seed(uint64_t seed, int64_t epoch, uint64_t salt) {
  SeededRng r(seed ^ (uint64_t(epoch) * 0x9E3779B97F4A7C15ULL) ^ salt);
  return r.next();
}

template <class T>
void seeded_shuffle(std::vector<T>& v, SeededRng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

// QLoRA's source_max_len / target_max_len (qlora.py, DataCollatorForCausalLM): the
// source (prompt, out of the loss) and the target (response + EOS, in the loss) are
// tokenized apart, each cut to its own length keeping its first tokens, then joined.
// Here the tokens of each kind are counted in order and those past their limit
// dropped, which is the same for a prompt + response record; in a multi-turn chat
// the limits apply to all prompt and all response turns together. 0 = no limit.
void cut_source_target(Row& doc, int source_max, int target_max) {
  size_t kept = 0;
  int sources = 0, targets = 0;
  for (size_t i = 0; i < doc.ids.size(); ++i) {
    const bool target = doc.loss[i] != 0;
    int& n = target ? targets : sources;
    const int limit = target ? target_max : source_max;
    if (limit > 0 && n >= limit) continue;
    ++n;
    doc.ids[kept] = doc.ids[i];
    doc.loss[kept] = doc.loss[i];
    ++kept;
  }
  doc.ids.resize(kept);
  doc.loss.resize(kept);
}

}  // namespace

// ---- TextRowSource ----------------------------------------------------------

TextRowSource::TextRowSource(std::vector<std::string> files, const EpochConfig& cfg,
                             std::shared_ptr<const RecordFormat> format, std::shared_ptr<const Tokenizer> tok)
    : files_(std::move(files)),
      cfg_(cfg),
      format_(std::move(format)),
      tok_(std::move(tok)),
      rng_(epoch_seed(cfg.seed, cfg.epoch, 0x5EED)) {
  if (cfg_.shuffle) seeded_shuffle(files_, rng_);
}

bool TextRowSource::read_line(Line& out) {
  while (true) {
    if (!reader_) {
      if (file_ >= files_.size()) return false;
      reader_ = std::make_unique<LineReader>(files_[file_]);
    }
    std::string_view sv;
    if (reader_->next(sv)) {
      out.text.assign(sv);
      out.file = int(file_);
      out.line_no = reader_->line_no();
      return true;
    }
    high_water_ = std::max(high_water_, reader_->buffer_high_water());
    reader_.reset();
    ++file_;
  }
}

bool TextRowSource::next_line(Line& out) {
  if (!cfg_.shuffle || cfg_.shuffle_buffer <= 1) return read_line(out);
  Line l;
  while (buffer_.size() < size_t(cfg_.shuffle_buffer) && buffer_bytes_ < cfg_.shuffle_buffer_bytes && read_line(l)) {
    buffer_bytes_ += l.text.size();
    buffer_.push_back(std::move(l));
  }
  if (buffer_.empty()) return false;
  size_t j = rng_.below(buffer_.size());
  buffer_bytes_ -= buffer_[j].text.size();
  out = std::move(buffer_[j]);
  if (j + 1 != buffer_.size()) buffer_[j] = std::move(buffer_.back());
  buffer_.pop_back();
  return true;
}

void TextRowSource::tokenize(const Example& ex, const std::string& where, Row& doc) const {
  doc.ids.clear();
  doc.loss.clear();
  if (ex.pretokenized) {
    for (size_t i = 0; i < ex.ids.size(); ++i)
      if (cfg_.vocab_size > 0 && ex.ids[i] >= cfg_.vocab_size)
        throw Error(where + ": input_ids[" + std::to_string(i) + "] = " + std::to_string(ex.ids[i]) +
                    " is >= the vocabulary size " + std::to_string(cfg_.vocab_size));
    doc.ids = ex.ids;
    doc.loss.assign(doc.ids.size(), 1);
    return;
  }
  if (!tok_) throw Error(where + ": text records need a tokenizer");
  bool any_loss = false;
  for (const auto& seg : ex.segments) {
    tok_->encode_into(seg.text, seg.special, doc.ids);
    doc.loss.resize(doc.ids.size(), seg.loss ? 1 : 0);
    any_loss = any_loss || seg.loss;
  }
  if (cfg_.eos_id < 0) throw Error(where + ": the tokenizer has no end-of-text token to separate documents");
  doc.ids.push_back(cfg_.eos_id);
  doc.loss.push_back(any_loss ? 1 : 0);
  if (cfg_.source_max_len > 0 || cfg_.target_max_len > 0) cut_source_target(doc, cfg_.source_max_len, cfg_.target_max_len);
}

bool TextRowSource::next_example(Example& ex, bool want_tokens, Row* doc) {
  Line l;
  while (next_line(l)) {
    if (blank(l.text)) continue;
    std::string where = files_[l.file] + ":" + std::to_string(l.line_no);
    try {
      ex = format_->parse(l.text, where);
      if (want_tokens) tokenize(ex, where, *doc);
      else if (ex.pretokenized) tokenize(ex, where, *doc);  // still validates the ids
      return true;
    } catch (const Error& e) {
      if (!cfg_.skip_bad_lines || e.kind() != ErrorKind::BadInput) throw;
      ++bad_lines_;
    }
  }
  return false;
}

bool TextRowSource::fill_docs() {
  constexpr size_t kChunk = 64;
  std::vector<Line> lines;
  Line l;
  while (lines.size() < kChunk && next_line(l))
    if (!blank(l.text)) lines.push_back(std::move(l));
  if (lines.empty()) return false;
  const int n = int(lines.size());
  docs_.assign(n, Row{});
  docs_at_ = 0;
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::string> where(n);
  for (int i = 0; i < n; ++i) where[i] = files_[lines[i].file] + ":" + std::to_string(lines[i].line_no);
  // Documents are independent: parse and tokenize them on `threads` threads, keep their order.
#pragma omp parallel for num_threads(std::max(cfg_.threads, 1)) schedule(dynamic, 4) if (cfg_.threads > 1)
  for (int i = 0; i < n; ++i) {
    try {
      tokenize(format_->parse(lines[i].text, where[i]), where[i], docs_[i]);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  // Errors surface in document order, as a sequential reader would meet them.
  size_t o = 0;
  for (int i = 0; i < n; ++i) {
    if (errors[i]) {
      try {
        std::rethrow_exception(errors[i]);
      } catch (const Error& e) {
        if (!cfg_.skip_bad_lines || e.kind() != ErrorKind::BadInput) throw;
        ++bad_lines_;
        continue;
      }
    }
    if (o != size_t(i)) docs_[o] = std::move(docs_[i]);
    ++o;
  }
  docs_.resize(o);
  return true;
}

bool TextRowSource::next_grouped(Row* row) {
  if (docs_at_ >= docs_.size()) {
    docs_.clear();
    docs_at_ = 0;
    Example ex;
    Row doc;
    while (int(docs_.size()) < cfg_.group_size && next_example(ex, true, &doc)) {
      if (doc.ids.size() > size_t(cfg_.seq_len) && !ex.pretokenized) {
        doc.ids.resize(cfg_.seq_len);
        doc.loss.resize(cfg_.seq_len);
      }
      docs_.push_back(std::move(doc));
    }
    // Longest first (stable: ties keep the shuffled order), as HF's LengthGroupedSampler.
    std::stable_sort(docs_.begin(), docs_.end(), [](const Row& a, const Row& b) { return a.ids.size() > b.ids.size(); });
  }
  if (docs_at_ >= docs_.size()) return false;
  if (row) *row = std::move(docs_[docs_at_]);
  ++docs_at_;
  return true;
}

bool TextRowSource::next(Row* row) {
  const size_t T = size_t(cfg_.seq_len);
  if (!cfg_.pack && cfg_.group_size > 0) return next_grouped(row);
  if (!cfg_.pack) {
    Example ex;
    Row doc;
    if (!next_example(ex, row != nullptr, &doc)) return false;
    if (row) {
      if (doc.ids.size() > T && !ex.pretokenized) {  // input_ids rows are used as they are
        doc.ids.resize(T);
        doc.loss.resize(T);
      }
      *row = std::move(doc);
    }
    return true;
  }
  while (pending_.ids.size() - pending_at_ < T && !done_) {
    while (docs_at_ >= docs_.size() && !done_)
      if (!fill_docs()) done_ = true;
    if (done_) break;
    Row& doc = docs_[docs_at_++];
    if (pending_at_ > 0) {  // keep the pending buffer at about one window + one document
      pending_.ids.erase(pending_.ids.begin(), pending_.ids.begin() + pending_at_);
      pending_.loss.erase(pending_.loss.begin(), pending_.loss.begin() + pending_at_);
      pending_at_ = 0;
    }
    pending_.ids.insert(pending_.ids.end(), doc.ids.begin(), doc.ids.end());
    pending_.loss.insert(pending_.loss.end(), doc.loss.begin(), doc.loss.end());
  }
  size_t avail = pending_.ids.size() - pending_at_;
  size_t n = std::min(avail, T);
  if (n == 0 || (n < T && (!cfg_.keep_tail || n < 2))) return false;
  if (row) {
    row->ids.assign(pending_.ids.begin() + pending_at_, pending_.ids.begin() + pending_at_ + n);
    row->loss.assign(pending_.loss.begin() + pending_at_, pending_.loss.begin() + pending_at_ + n);
  }
  pending_at_ += n;
  return true;
}

// ---- ShardRowSource ---------------------------------------------------------

ShardRowSource::ShardRowSource(const std::vector<std::string>& files, const EpochConfig& cfg) : cfg_(cfg) {
  for (const auto& f : files) {
    shards_.push_back(std::make_unique<TokenShardReader>(f));
    starts_.push_back(total_);
    total_ += shards_.back()->size();
  }
  const int64_t T = cfg_.seq_len;
  int64_t full = total_ / T;
  n_rows_ = full + (cfg_.keep_tail && total_ - full * T >= 2 ? 1 : 0);
  if (cfg_.shuffle && full > 1)  // full windows only: the tail (one pass) stays last
    order_ = std::make_unique<IndexPermutation>(uint64_t(full), epoch_seed(cfg_.seed, cfg_.epoch, 0xB1B));
}

void ShardRowSource::read(int64_t begin, int64_t n, int32_t* out) const {
  size_t s = std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin() - 1;
  while (n > 0) {
    int64_t off = begin - starts_[s];
    int64_t take = std::min(n, shards_[s]->size() - off);
    shards_[s]->read(off, take, out);
    for (int64_t i = 0; i < take; ++i)
      if (cfg_.vocab_size > 0 && (out[i] >= cfg_.vocab_size || out[i] < 0))
        throw Error(shards_[s]->path() + ": token " + std::to_string(off + i) + " is " + std::to_string(out[i]) +
                    ", >= the vocabulary size " + std::to_string(cfg_.vocab_size));
    out += take, begin += take, n -= take, ++s;
  }
}

bool ShardRowSource::next(Row* row) {
  if (at_ >= n_rows_) return false;
  int64_t w = order_ && uint64_t(at_) < order_->size() ? int64_t((*order_)(uint64_t(at_))) : at_;
  ++at_;
  if (row) {
    int64_t begin = w * cfg_.seq_len, n = std::min<int64_t>(cfg_.seq_len, total_ - begin);
    row->ids.resize(n);
    read(begin, n, row->ids.data());
    row->loss.assign(n, 1);
  }
  return true;
}

}  // namespace qtrain
