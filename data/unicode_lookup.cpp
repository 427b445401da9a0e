// classify(): ASCII through a 128-entry table, everything else by binary search
// over the generated ranges (unicode_classes.cpp).
#include <array>

#include "data/unicode_classes.h"

namespace qtrain::unicode {

namespace {

bool in_ranges(const CodeRange* r, int n, uint32_t cp) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < r[mid].lo) hi = mid - 1;
    else if (cp > r[mid].hi) lo = mid + 1;
    else return true;
  }
  return false;
}

CharClass classify_slow(uint32_t cp) {
  if (cp > 0x10FFFF) return CharClass::Other;
  if (in_ranges(k_letter_ranges, k_letter_count, cp)) return CharClass::Letter;
  if (in_ranges(k_number_ranges, k_number_count, cp)) return CharClass::Number;
  if (in_ranges(k_space_ranges, k_space_count, cp)) return CharClass::Space;
  return CharClass::Other;
}

const std::array<CharClass, 128> k_ascii = [] {
  std::array<CharClass, 128> t{};
  for (uint32_t c = 0; c < 128; ++c) t[c] = classify_slow(c);
  return t;
}();

}  // namespace

CharClass classify(uint32_t cp) { return cp < 128 ? k_ascii[cp] : classify_slow(cp); }

}  // namespace qtrain::unicode
