// Half-quadratic quantization (HQQ, Badri & Shaji 2023) as the PyPI `hqq`
// package (0.2.x) does it for HQQLinear: groups of 64 consecutive weights of
// the row-major matrix (hqq's axis=1, HQQLinear's default: W.reshape(-1, 64),
// so a group runs along the input features, and straddles two rows when the
// row length is not a multiple of 64, as in hqq), asymmetric uint codes
// q in [0, 2^bits - 1], w ~ (q - zero) * scale. The zero point is refined by
// hqq's proximal solver optimize_weights_proximal (the "legacy" default:
// lp_norm 0.7, beta 10, 20 iterations, stopping as soon as the mean |W - W_r|
// of the whole matrix stops falling); the scale keeps its min-max value, as
// hqq's default solver leaves it. 4-bit starts from a rounded zero (hqq's
// round_zero=True for 4 bits in hqq_base_quant_config), 2-bit does not.
// Scale and zero stay F32 (hqq's values on the CPU before HQQLinear casts its
// meta to the compute dtype).
//
// Storage: the row-major codes packed 2 per byte (4-bit, first code in the
// high nibble) or 4 per byte (2-bit, first code in the top two bits), and one
// F32 scale and zero per group: 0.625 bytes per weight at 4 bits, 0.375 at 2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qtrain::quant {

constexpr int64_t kHqqGroup = 64;

struct HqqPacked {
  int bits = 4;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> codes;  // [rows * cols * bits / 8]
  std::vector<float> scale;    // [rows * cols / 64]: dequant multiplier (hqq's meta["scale"])
  std::vector<float> zero;     // [rows * cols / 64]
  int64_t row_bytes() const { return cols * bits / 8; }
  size_t bytes() const { return codes.size() + (scale.size() + zero.size()) * sizeof(float); }
  // the code of weight (r, c)
  int code(int64_t r, int64_t c) const;
};

// w: [rows, cols] row-major, rows * cols a multiple of 64 and cols of 8 / bits;
// bits 4 or 2 (else Error).
HqqPacked quantize_hqq(const float* w, int64_t rows, int64_t cols, int bits);
// Rows [r0, r1) dequantized into out ((r1 - r0) * cols floats): (q - zero) * scale in F32.
void dequantize_hqq_rows(const HqqPacked& p, int64_t r0, int64_t r1, float* out);
// Weights [i0, i0 + n) of the flat matrix (i0 a multiple of 8 / bits) from all the
// packed codes and per-group scale/zero (the CPU reference of the GPU kernel).
void dequantize_hqq_flat(const uint8_t* codes, const float* scale, const float* zero, int bits, int64_t i0,
                         int64_t n, float* out);

}  // namespace qtrain::quant
