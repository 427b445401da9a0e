// The text of tokens as they are generated, released in whole UTF-8
// characters. Byte-level BPE splits a multi-byte character (an accented
// letter, CJK, emoji) over several tokens, so printing each token's bytes as
// it comes would put half a character on the screen. This decodes the growing
// id list and hands out only the new bytes that end on a character boundary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace qtrain {

class TokenTextStream {
 public:
  explicit TokenTextStream(const Tokenizer& tok) : tok_(tok) {}

  // Adds a token; returns the text that became complete (possibly empty).
  std::string push(int32_t id);
  // The rest, at the end of generation: an incomplete character left over
  // becomes U+FFFD (as HF's streamers decode with errors="replace").
  std::string finish();
  // Everything decoded so far, complete or not.
  std::string text() const { return tok_.decode(ids_); }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t released_ = 0;  // bytes handed out
};

}  // namespace qtrain
