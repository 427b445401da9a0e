// The GPT-2 pre-tokenizer, by hand: splits text into the pieces that the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matches, over UTF-8 code points. BPE then runs inside each piece.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qtrain {

enum class PreTokenizer {
  Gpt2,    // the regex above
  SmolLM,  // every \p{N} code point its own piece first (HF Digits(individual_digits)), then the regex
};

// "gpt2" | "smollm" (also the GGUF tokenizer.ggml.pre names that mean the same); unknown -> Error.
PreTokenizer pre_tokenizer_from_name(const std::string& name);

struct Piece {
  uint32_t begin, len;  // byte range in the text
};

// Appends the pieces of text (offsets relative to text.data()) to out.
void pretokenize(std::string_view text, PreTokenizer kind, std::vector<Piece>& out);

}  // namespace qtrain
