// BitNet b1.58 weights in 2 bits: W ~= scale * T, T in {-1, 0, +1}, one absmean
// scale per tensor (Ma et al. 2024): scale = max(mean|W|, 1e-5),
// T = clamp(round_half_even(W / scale), -1, 1) - the same numbers as
// ternary_fake_quant (kernels/ternary.h) at lambda 1.
//
// Layout (4 weights per byte): code = T + 1 in {0, 1, 2}. Each row is cut into
// groups of 16 weights held by one little-endian 32-bit word; weight 4g + i of
// the group sits in byte i at bits 2g..2g+1. So (word >> 2g) & 0x03030303 holds
// the codes of weights 4g..4g+3, one per byte, in the order of an int8 x word:
// the W2A8 product decodes with a shift and a mask per dp4a (kernels/cuda/ternary.cu).
// Rows are padded to whole words with code 1 (weight 0).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qtrain::quant {

struct PackedTernary {
  int64_t rows = 0, cols = 0;
  float scale = 0.f;
  std::vector<uint8_t> codes;  // [rows, row_bytes(cols)]
  static int64_t row_bytes(int64_t cols) { return (cols + 15) / 16 * 4; }
  size_t bytes() const { return codes.size() + sizeof(float); }
};

// The per-tensor absmean scale, with the reference's 1e-5 floor.
float ternary_scale(const float* w, int64_t n);
// T = clamp(round_half_even(v * inv_scale), -1, 1)
int ternary_level(float v, float inv_scale);
PackedTernary quantize_ternary(const float* w, int64_t rows, int64_t cols);
// T at (row r, column c) of a packed row.
inline int ternary_at(const uint8_t* row, int64_t c) {
  const int64_t word = c / 16, g = (c % 16) / 4, i = c % 4;
  return int((row[word * 4 + i] >> (2 * g)) & 3) - 1;
}

}  // namespace qtrain::quant
