// classify_non_ascii(): binary search over the generated ranges (unicode_classes.cpp).

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

}  // namespace

CharClass classify_non_ascii(uint32_t cp) {
  if (cp > 0x10FFFF) return CharClass::Other;
  if (in_ranges(k_letter_ranges, k_letter_count, cp)) return CharClass::Letter;
  if (in_ranges(k_number_ranges, k_number_count, cp)) return CharClass::Number;
  if (in_ranges(k_space_ranges, k_space_count, cp)) return CharClass::Space;
  return CharClass::Other;
}

}  // namespace qtrain::unicode
