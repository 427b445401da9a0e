// Byte-level BPE tokenizer, the GPT-2 family (GPT-2, SmolLM2, ...).
// Built from GPT-2's encoder.json + vocab.bpe, an HF tokenizer.json, or the
// vocab/merges a GGUF file carries. encode() is const and thread-safe: each
// thread keeps its own cache of already-encoded words.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/pretokenize.h"

namespace qtrain {

class Tokenizer {
 public:
  // path: a directory holding encoder.json+vocab.bpe (GPT-2 originals) or vocab.json+merges.txt (HF GPT-2 dir),
  // or a tokenizer.json file, or a directory holding tokenizer.json. Bad/missing files -> qtrain::Error naming them.
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  // The same from file contents (tests, the fuzzer); the names are used in messages.
  // GPT-2 form: encoder.json (or vocab.json) + vocab.bpe (or merges.txt).
  static std::unique_ptr<Tokenizer> from_gpt2_files(const std::string& vocab_json, const std::string& merges,
                                                    const std::string& vocab_name, const std::string& merges_name);
  // HF form: tokenizer.json, and tokenizer_config.json beside it ("" when there is none).
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& text, const std::string& config_text,
                                                        const std::string& name);
  // From vocab + merges as in GGUF metadata (tokenizer.ggml.tokens / .merges / .token_type, tokenizer.ggml.pre).
  // tokens are byte-level-unicode strings in id order; merges are "a b" strings; token_types as GGUF
  // (1 normal, 3 control, 4 user-defined ...): control/user-defined tokens are the special tokens.
  // pre: "gpt2" or "smollm" (see pretokenize.h); unknown -> Error.
  static std::unique_ptr<Tokenizer> from_vocab_merges(std::vector<std::string> tokens, std::vector<std::string> merges,
                                                      std::vector<int32_t> token_types, const std::string& pre,
                                                      int32_t bos_id, int32_t eos_id);

  // allow_special: recognise special tokens (<|endoftext|>, added tokens) in the text;
  // otherwise they are encoded as the plain text they are.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;
  // Appends to out (no allocation of a fresh vector per call).
  void encode_into(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;
  // ids outside [0, vocab_size) -> Error.
  std::string decode(std::span<const int32_t> ids) const;
  int vocab_size() const { return int(token_bytes_.size()); }
  int32_t eos_id() const { return eos_id_; }  // <|endoftext|> for GPT-2
  int32_t bos_id() const { return bos_id_; }  // -1 if none
  // The id of a token given as its text (special tokens as written, others as raw bytes).
  std::optional<int32_t> token_id(std::string_view token) const;
  PreTokenizer pre_tokenizer() const { return pre_; }

  // One entry of the vocabulary, as the loaders hand it over.
  struct Entry {
    std::string bytes;     // the raw bytes the token stands for
    bool special = false;  // matched in text only when allowed
  };
  // merges as (left id, right id) in rank order; the merged token must be in the vocabulary.
  Tokenizer(std::vector<Entry> vocab, const std::vector<std::pair<int32_t, int32_t>>& merges, PreTokenizer pre,
            int32_t bos_id, int32_t eos_id, const std::string& origin);

 private:
  struct Merge {
    int32_t rank, id;
  };
  // (left, right) -> Merge, open addressing with linear probing: the BPE inner loop
  // probes it once per adjacent pair, so it must be one cache line, no chasing.
  class MergeTable {
   public:
    void build(const std::vector<std::pair<uint64_t, Merge>>& items);
    const Merge* find(int32_t left, int32_t right) const {
      uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
      for (size_t i = slot(key);; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.key == key) return &s.merge;
        if (s.key == k_empty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t k_empty = ~uint64_t(0);
    struct Slot {
      uint64_t key = k_empty;
      Merge merge{};
    };
    size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    int shift_ = 64;
  };
  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void bpe_long(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;

  std::vector<std::string> token_bytes_;               // id -> bytes
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // bytes -> id (non-special)
  MergeTable merges_;                                  // (left, right) -> rank, merged id
  bool missing_bytes_ = false;  // some bytes have no token: they are dropped, as HF does
  int32_t byte_id_[256];                               // the id of each single byte
  std::vector<std::pair<std::string, int32_t>> specials_;  // text -> id, longest first
  PreTokenizer pre_;
  int32_t bos_id_, eos_id_;
  uint64_t serial_;  // distinguishes this tokenizer's entries in the per-thread word cache
};

// GPT-2's reversible byte <-> printable code point mapping used in vocab files.
namespace byte_level {
// Raw bytes of a vocab-file token string (Error when a code point is not in the mapping).
bool decode(std::string_view token, std::string& bytes);
std::string encode(std::string_view bytes);
}  // namespace byte_level

}  // namespace qtrain
