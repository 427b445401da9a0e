// UTF-8 decoding for the pre-tokenizer and input validation. Text from users
// is validated once (validate_utf8) so the hot loop can decode without checks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qtrain::utf8 {

// Decodes the code point at s[i]; returns its byte length (1..4). Invalid bytes
// decode as themselves with length 1, so byte-level BPE still round-trips them.
inline int decode(std::string_view s, size_t i, uint32_t& cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  size_t left = s.size() - i;
  unsigned char c = p[0];
  if (c < 0x80) { cp = c; return 1; }
  if ((c & 0xE0) == 0xC0 && left >= 2 && (p[1] & 0xC0) == 0x80) {
    cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    if (cp >= 0x80) return 2;
  } else if ((c & 0xF0) == 0xE0 && left >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
    cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) return 3;
  } else if ((c & 0xF8) == 0xF0 && left >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
             (p[3] & 0xC0) == 0x80) {
    cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    if (cp >= 0x10000 && cp <= 0x10FFFF) return 4;
  }
  cp = 0xFFFD0000u | c;  // not a code point: classified as Other
  return 1;
}

// Byte offset of the first invalid UTF-8 sequence, or npos when valid.
inline size_t first_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    int n = decode(s, i, cp);
    if (cp >= 0xFFFD0000u) return i;
    i += n;
  }
  return std::string_view::npos;
}

// Appends the UTF-8 encoding of cp.
template <class Str>
inline void append(Str& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Length of the longest prefix of s that does not end inside a multi-byte
// character: a lead byte at the end whose continuation bytes have not all
// arrived yet is held back (streaming text made token by token, where one
// character can span tokens). Bytes that can never complete are not held.
inline size_t complete_prefix(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    size_t want = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return want > back ? n - back : n;
  }
  return n;
}

}  // namespace qtrain::utf8
