// What every fuzz target checks: an input is parsed, or rejected with a
// BadInput qtrain::Error. A Runtime or internal error (QT_CHECK) traps; any
// other exception escapes, which libFuzzer and replay_main.cpp report.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "kernels/error.h"

namespace qtrain::fuzz {

template <class F>
void parse_or_bad_input(F&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) __builtin_trap();
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Targets whose input is two files take them as one input split at the first
// NUL byte (text formats hold none): "first\0second". No NUL: all first.
inline std::pair<std::string, std::string> split_at_nul(std::string_view in) {
  size_t z = in.find('\0');
  if (z == std::string_view::npos) return {std::string(in), std::string()};
  return {std::string(in.substr(0, z)), std::string(in.substr(z + 1))};
}

}  // namespace qtrain::fuzz
