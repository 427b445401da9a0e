// Byte-level BPE: pre-tokenize into pieces, then merge the bytes of each piece
// by merge rank. Repeated pieces (most of code: keywords, indentation) come
// from a per-thread cache.
#include "data/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <queue>

#include "data/utf8.h"
#include "kernels/error.h"

namespace qtrain {

namespace byte_level {

namespace {
// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to 256+n.
struct Tables {
  uint32_t byte_to_cp[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  Tables() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_cp[b] = printable ? uint32_t(b) : uint32_t(256 + n++);
      cp_to_byte[byte_to_cp[b]] = uint8_t(b);
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}
}  // namespace

bool decode(std::string_view token, std::string& bytes) {
  const auto& t = tables();
  bytes.clear();
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    i += utf8::decode(token, i, cp);
    auto it = t.cp_to_byte.find(cp);
    if (it == t.cp_to_byte.end()) return false;
    bytes += char(it->second);
  }
  return true;
}

std::string encode(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) utf8::append(out, tables().byte_to_cp[b]);
  return out;
}

}  // namespace byte_level

namespace {

std::atomic<uint64_t> g_serial{1};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Per-thread cache of piece -> ids; keyed by tokenizer serial so two tokenizers never mix.
struct WordCache {
  uint64_t serial = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};
constexpr size_t k_cache_max = 1 << 16;
constexpr size_t k_cache_piece_max = 64;  // longer pieces are rare enough not to cache

}  // namespace

void Tokenizer::MergeTable::build(const std::vector<std::pair<uint64_t, Merge>>& items) {
  size_t cap = 16;
  while (cap < items.size() * 2) cap *= 2;  // load factor <= 1/2: short probes
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  shift_ = 64 - std::countr_zero(cap);
  for (const auto& [key, merge] : items) {
    size_t i = slot(key);
    while (slots_[i].key != k_empty && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == k_empty) slots_[i] = Slot{key, merge};  // the first (lowest-rank) duplicate wins
  }
}

Tokenizer::Tokenizer(std::vector<Entry> vocab, const std::vector<std::pair<int32_t, int32_t>>& merges,
                     PreTokenizer pre, int32_t bos_id, int32_t eos_id, const std::string& origin)
    : pre_(pre), bos_id_(bos_id), eos_id_(eos_id), serial_(g_serial++) {
  int32_t n = int32_t(vocab.size());
  token_bytes_.reserve(n);
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  for (int32_t id = 0; id < n; ++id) {
    auto& e = vocab[id];
    if (e.special) {
      if (!e.bytes.empty()) specials_.emplace_back(e.bytes, id);
    } else {
      bytes_to_id_.emplace(e.bytes, id);  // first id wins on duplicates
      if (e.bytes.size() == 1 && byte_id_[uint8_t(e.bytes[0])] < 0) byte_id_[uint8_t(e.bytes[0])] = id;
    }
    token_bytes_.push_back(std::move(e.bytes));
  }
  // Some byte-level vocabularies (SmolLM2's) lack a few control bytes. HF's BPE
  // with no unk token drops such characters, so encode() does the same; but a
  // vocabulary missing most bytes is not byte-level at all.
  int missing = 0;
  for (int b = 0; b < 256; ++b) missing += byte_id_[b] < 0;
  missing_bytes_ = missing > 0;
  if (missing > 32)
    throw Error(origin + ": the vocabulary has no token for " + std::to_string(missing) +
                " of the 256 bytes (not a byte-level BPE vocabulary)");
  std::vector<std::pair<uint64_t, Merge>> items;
  items.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    auto [a, b] = merges[r];
    auto it = bytes_to_id_.find(token_bytes_[a] + token_bytes_[b]);
    if (it == bytes_to_id_.end())
      throw Error(origin + ": merge " + std::to_string(r) + " ('" + byte_level::encode(token_bytes_[a]) + " " +
                  byte_level::encode(token_bytes_[b]) + "') makes a token that is not in the vocabulary");
    items.push_back({(uint64_t(uint32_t(a)) << 32) | uint32_t(b), Merge{int32_t(r), it->second}});
  }
  merges_.build(items);
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  if (eos_id_ >= n || bos_id_ >= n) throw Error(origin + ": bos/eos id outside the vocabulary");
}

void Tokenizer::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  // Each round merges the lowest-ranked adjacent pair (leftmost on ties), which is
  // what GPT-2's bpe() does. Short pieces: rescan the pairs each round (fastest for
  // words). Long pieces (runs of spaces, '=' rulers, minified code): a heap, so a
  // 1 MB piece costs n log n, not n^2.
  size_t n = piece.size();
  if (n > 48) {
    bpe_long(piece, out);
    return;
  }
  int32_t sym[48];
  for (size_t i = 0; i < n; ++i) sym[i] = byte_id_[uint8_t(piece[i])];
  while (n > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      const Merge* m = merges_.find(sym[i], sym[i + 1]);
      if (m && m->rank < best_rank) {
        best_rank = m->rank;
        best_id = m->id;
        best = i;
      }
    }
    if (best_id < 0) break;
    sym[best] = best_id;
    std::copy(sym + best + 2, sym + n, sym + best + 1);
    --n;
  }
  out.insert(out.end(), sym, sym + n);
}

void Tokenizer::bpe_long(std::string_view piece, std::vector<int32_t>& out) const {
  const int32_t n = int32_t(piece.size());
  std::vector<int32_t> sym(n), next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) {
    sym[i] = byte_id_[uint8_t(piece[i])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // (rank, left position, left id, right id): stale entries are skipped when popped.
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const Merge* m = merges_.find(sym[i], sym[next[i]])) heap.push({m->rank, i, sym[i], sym[next[i]]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t i = c.pos;
    if (sym[i] != c.left || next[i] < 0 || sym[next[i]] != c.right) continue;  // stale
    int32_t j = next[i];
    sym[i] = merges_.find(c.left, c.right)->id;
    sym[j] = -1;  // dead
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  thread_local WordCache cache;
  thread_local std::vector<Piece> pieces;
  if (cache.serial != serial_) {
    cache.map.clear();
    cache.serial = serial_;
  }
  if (text.size() > UINT32_MAX)  // pieces hold 32-bit offsets
    throw Error("tokenizer: a single text of " + std::to_string(text.size()) + " bytes is over the 4 GiB limit");
  pieces.clear();
  pretokenize(text, pre_, pieces);
  thread_local std::string kept;
  for (const Piece& p : pieces) {
    std::string_view w = text.substr(p.begin, p.len);
    if (missing_bytes_) {
      kept.clear();
      for (char c : w)
        if (byte_id_[uint8_t(c)] >= 0) kept.push_back(c);
      if (kept.empty()) continue;
      if (kept.size() != w.size()) w = kept;
    }
    if (w.size() == 1) {
      out.push_back(byte_id_[uint8_t(w[0])]);
      continue;
    }
    if (w.size() > k_cache_piece_max) {
      bpe(w, out);
      continue;
    }
    auto it = cache.map.find(w);
    if (it != cache.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    size_t start = out.size();
    bpe(w, out);
    if (cache.map.size() >= k_cache_max) cache.map.clear();
    cache.map.emplace(std::string(w), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

void Tokenizer::encode_into(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
  if (!allow_special || specials_.empty()) {
    encode_ordinary(text, out);
    return;
  }
  size_t pos = 0;
  while (pos < text.size()) {
    // the earliest special token from pos (longest on ties: specials_ is sorted longest first)
    size_t best = std::string_view::npos;
    int32_t best_id = -1;
    size_t best_len = 0;
    for (const auto& [s, id] : specials_) {
      size_t f = text.find(s, pos);
      if (f < best) {
        best = f;
        best_id = id;
        best_len = s.size();
      }
    }
    if (best == std::string_view::npos) {
      encode_ordinary(text.substr(pos), out);
      break;
    }
    if (best > pos) encode_ordinary(text.substr(pos, best - pos), out);
    out.push_back(best_id);
    pos = best + best_len;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, allow_special, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw Error("tokenizer: cannot decode id " + std::to_string(id) + ": the vocabulary has " +
                  std::to_string(vocab_size()) + " tokens");
    out += token_bytes_[id];
  }
  return out;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const auto& [s, id] : specials_)
    if (s == token) return id;
  auto it = bytes_to_id_.find(std::string(token));
  if (it == bytes_to_id_.end()) return std::nullopt;
  return it->second;
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab_merges(std::vector<std::string> tokens,
                                                        std::vector<std::string> merges,
                                                        std::vector<int32_t> token_types, const std::string& pre,
                                                        int32_t bos_id, int32_t eos_id) {
  const std::string origin = "GGUF tokenizer";
  if (!token_types.empty() && token_types.size() != tokens.size())
    throw Error(origin + ": tokenizer.ggml.token_type has " + std::to_string(token_types.size()) +
                " entries, tokenizer.ggml.tokens " + std::to_string(tokens.size()));
  std::vector<Entry> vocab(tokens.size());
  std::unordered_map<std::string, int32_t> by_text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    int32_t type = token_types.empty() ? 1 : token_types[i];
    bool special = type == 3 || type == 4;
    vocab[i].special = special;
    // Control/user tokens are written as plain text; so are the odd unused or
    // unknown entries some converters leave that are not byte-level strings.
    if (special || !byte_level::decode(tokens[i], vocab[i].bytes)) {
      vocab[i].bytes = tokens[i];
      vocab[i].special = true;
    }
    by_text.emplace(tokens[i], int32_t(i));
  }
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    size_t sp = m.find(' ', 1);
    auto a = sp == std::string::npos ? by_text.end() : by_text.find(m.substr(0, sp));
    auto b = sp == std::string::npos ? by_text.end() : by_text.find(m.substr(sp + 1));
    if (a == by_text.end() || b == by_text.end())
      throw Error(origin + ": merge " + std::to_string(r) + " ('" + m + "') names a token not in the vocabulary");
    pairs.emplace_back(a->second, b->second);
  }
  return std::make_unique<Tokenizer>(std::move(vocab), pairs, pre_tokenizer_from_name(pre), bos_id, eos_id, origin);
}

}  // namespace qtrain
