#include "data/pretokenize.h"

#include "data/unicode_classes.h"
#include "data/utf8.h"
#include "kernels/error.h"

namespace qtrain {

using unicode::CharClass;

PreTokenizer pre_tokenizer_from_name(const std::string& name) {
  if (name == "gpt2" || name == "gpt-2" || name == "default") return PreTokenizer::Gpt2;
  if (name == "smollm") return PreTokenizer::SmolLM;
  throw Error("tokenizer: unknown pre-tokenizer '" + name + "' (known: gpt2, smollm)");
}

namespace {

struct Cursor {
  std::string_view s;
  // class and byte length of the code point at i (Other/0 at the end)
  CharClass at(size_t i, int& len) const {
    if (i >= s.size()) {
      len = 0;
      return CharClass::Other;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      len = 1;
      return unicode::classify(c);
    }
    uint32_t cp;
    len = utf8::decode(s, i, cp);
    return unicode::classify(cp);
  }
};

// Length of the contraction at i ('s 't 're 've 'm 'll 'd, case-sensitive as in GPT-2), or 0.
size_t contraction(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// End of the run of code points of class cls (for Other: neither letter, number nor space) from i.
size_t run_end(const Cursor& cur, size_t i, CharClass cls) {
  int len;
  while (i < cur.s.size() && cur.at(i, len) == cls) i += len;
  return i;
}

void split_gpt2(std::string_view s, uint32_t base, std::vector<Piece>& out) {
  Cursor cur{s};
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    if (size_t c = contraction(s, i)) {
      out.push_back({uint32_t(base + i), uint32_t(c)});
      i += c;
      continue;
    }
    int len;
    CharClass cls = cur.at(i, len);
    size_t body = i;
    if (s[i] == ' ') {  // " ?X+": a single ASCII space joins the run that follows it
      int len2;
      CharClass next = cur.at(i + 1, len2);
      if (len2 > 0 && next != CharClass::Space) {
        cls = next;
        body = i + 1;
      }
    }
    if (cls != CharClass::Space) {
      i = run_end(cur, body, cls);
      out.push_back({uint32_t(base + start), uint32_t(i - start)});
      continue;
    }
    // Whitespace: \s+(?!\S) keeps the last space for the next piece when a non-space follows.
    size_t end = run_end(cur, i, CharClass::Space);
    if (end < s.size()) {
      // back off one code point (all \s are 1..3 bytes; find the start of the last one)
      size_t last = end - 1;
      while (last > i && (static_cast<unsigned char>(s[last]) & 0xC0) == 0x80) --last;
      if (last > i) end = last;
    }
    out.push_back({uint32_t(base + start), uint32_t(end - start)});
    i = end;
  }
}

}  // namespace

void pretokenize(std::string_view text, PreTokenizer kind, std::vector<Piece>& out) {
  if (kind == PreTokenizer::Gpt2) {
    split_gpt2(text, 0, out);
    return;
  }
  // SmolLM: isolate every number code point, run the regex on the text between them.
  Cursor cur{text};
  size_t seg = 0, i = 0;
  while (i < text.size()) {
    int len;
    if (cur.at(i, len) == CharClass::Number) {
      if (i > seg) split_gpt2(text.substr(seg, i - seg), uint32_t(seg), out);
      out.push_back({uint32_t(i), uint32_t(len)});
      seg = i + len;
    }
    i += len;
  }
  if (seg < text.size()) split_gpt2(text.substr(seg), uint32_t(seg), out);
}

}  // namespace qtrain
