#include <gtest/gtest.h>

#include <random>

#include "kernels/quant/nf4.h"

namespace qtrain::quant {

// The parallel path (> 4096 blocks) gives the bytes and absmax that quantizing
// the same values in small serial pieces gives.
TEST(Nf4Parallel, LargeWeightEqualsPiecewiseSerialQuantization) {
  const int64_t n = 1 << 20, piece = 64 * 1000;
  std::vector<float> w(static_cast<size_t>(n));
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (auto& x : w) x = nd(rng);
  Packed4 whole = quantize_4bit(w.data(), n, Code4::NF4, false);
  for (int64_t s = 0; s < n; s += piece) {
    int64_t len = std::min(piece, n - s);
    Packed4 part = quantize_4bit(w.data() + s, len, Code4::NF4, false);
    for (int64_t i = 0; i < len / 2; ++i) ASSERT_EQ(part.packed[size_t(i)], whole.packed[size_t(s / 2 + i)]) << s + 2 * i;
    for (int64_t b = 0; b < part.blocks(); ++b) ASSERT_EQ(part.absmax[size_t(b)], whole.absmax[size_t(s / 64 + b)]);
  }
}

}  // namespace qtrain::quant
