#include "data/token_text_stream.h"

#include "data/utf8.h"

namespace qtrain {

std::string TokenTextStream::push(int32_t id) {
  ids_.push_back(id);
  // The whole list is decoded again (not just the new token) so that a
  // tokenizer whose decoding is not per-token concatenation stays correct.
  std::string all = tok_.decode(ids_);
  size_t end = utf8::complete_prefix(all);
  if (end <= released_) return {};
  std::string out = all.substr(released_, end - released_);
  released_ = end;
  return out;
}

std::string TokenTextStream::finish() {
  std::string all = tok_.decode(ids_);
  const size_t end = utf8::complete_prefix(all);
  std::string out = end > released_ ? all.substr(released_, end - released_) : std::string();
  if (end < all.size()) utf8::append(out, 0xFFFD);
  released_ = all.size();
  return out;
}

}  // namespace qtrain
