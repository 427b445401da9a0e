// LowRA (Zhou et al., ICML 2025, "LowRA: Accurate and Efficient LoRA
// Fine-Tuning of LLMs under 2 Bits") per-output-channel mixed-precision
// quantization: each output channel (a row of the [out, in] weight) gets its
// own precision (1, 2 or 4 bits) and its own 2^bits-level mapping, learned by
// a weighted Lloyd-Max on that row alone (paper §5, Appendix G). Weights are
// absmax-normalized in blocks of 64 along the row, as QLoRA (§4.1): LLM weight
// magnitudes vary far more across output channels than along a row, so a
// per-row codebook and per-row precision follow the real distribution where
// one global NF4 code cannot, and the block absmax keeps outliers local.
//
// Fitting a row (lowra_fit_row): x_i = w_i / absmax(block of i), and each x_i
// is weighted by its block's absmax (the paper's choice: a block of large
// weights costs more when its normalized values are off). Start from the
// paper's Listing 1 mapping (NF4's 16 levels for 4 bits, [-1, 0, 0.3379, 1]
// for 2, [-1, 1] for 1), then alternate E-step (nearest level; thresholds
// are the midpoints of consecutive levels) and M-step (level = weighted
// centroid of its points) for `iters` iterations (the paper uses 2), keeping
// the best mapping and stopping as soon as the weighted objective stops going
// down (§5: "when max iteration is reached or the MSE stops going down").
// Levels are stored F32 after every M-step, so the objective reported is the
// one of the mapping actually returned.
//
// Assignment, everywhere (fit and quantize): code = the nearest level of the
// F32 x = w / absmax, an exact tie going to the lower level. It is computed as
// the count of midpoints strictly below x, the midpoints taken in double:
// the sum of two floats is exact there, so the comparison is the exact
// nearest-level rule, not one blurred by a rounded F32 midpoint. A block whose
// absmax is 0 has x = 0 and weight 0: it takes any code and dequantizes to 0.
//
// Storage (LowraPacked): each row's codes packed LSB first at its own width
// (a row is whole bytes since cols % 64 == 0), a byte offset per row (rows
// have different widths), a 16-slot F32 LUT per row (the largest mapping, so
// a dequantize kernel indexes it without knowing the width), and one F32
// absmax per 64 weights. Dequantize: w = lut[r][code] * absmax, one F32
// product, which a CUDA kernel can reproduce bit for bit. Bytes per weight:
// bits/8 + 4/64 for the absmax, plus 64 + 9 bytes per row (LUT, offset, bits).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qtrain::quant {

constexpr int64_t kLowraGroup = 64;  // weights per absmax block, along a row (input features)
constexpr int kLowraLut = 16;        // LUT slots per row (2^4)

// The paper's Listing 1 starting mapping for bits 1, 2 or 4 (else Error), ascending:
// 4-bit = NF4's 16 levels, 2-bit [-1, 0, 0.3379, 1], 1-bit [-1, 1].
std::vector<float> lowra_init_mapping(int bits);

struct LowraFit {
  std::vector<float> mapping;  // 2^bits ascending levels, in units of the block absmax
  double mse = 0;              // mean (w - deq)^2 over the row, in the weight's own units
  // The weighted normalized objective sum_i a_i (x_i - level)^2 / sum_i a_i (a_i: the absmax of
  // i's block) of the init mapping, then of each iteration's mapping, the last one included when
  // it did not go down (and was dropped).
  std::vector<double> wmse;
};

// Weighted Lloyd-Max for ONE row of `cols` weights (cols a positive multiple of 64, bits 1, 2 or
// 4, iters >= 0, the weights finite; else Error). Allocates per row, never per weight; no OpenMP
// inside (callers parallelize over rows).
LowraFit lowra_fit_row(const float* w, int64_t cols, int bits, int iters = 2);

struct LowraPacked {
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> bits;        // [rows]: 1, 2 or 4
  std::vector<int64_t> row_offset;  // [rows + 1]: byte offset of row r's codes; row r has cols*bits[r]/8 bytes
  std::vector<uint8_t> codes;       // code of (r, c) at byte row_offset[r] + c*b/8, bit shift (c*b)%8, LSB first
  std::vector<float> lut;           // [rows * 16]: row r's levels in its first 2^bits[r] slots (rest 0)
  std::vector<float> absmax;        // [rows * cols/64] F32
  size_t bytes() const;             // codes + lut + absmax + row_offset + bits, as stored
  double avg_bits() const;          // code bits per weight
  int code(int64_t r, int64_t c) const;
};

// Quantize w [rows, cols] row-major with per-row bits and per-row LUT (lut: rows*16 floats, row
// r's first 2^bits[r] ascending and finite; the other slots are ignored): absmax per 64-block from
// w itself, code = nearest level of w/absmax (ties to the lower code). Error for cols not a
// positive multiple of 64 (naming the shape), bits other than 1/2/4, a bad LUT or non-finite w.
LowraPacked quantize_lowra(const float* w, int64_t rows, int64_t cols, const uint8_t* bits, const float* lut);

// Rows [r0, r1) dequantized: out[(r-r0)*cols + c] = lut[r*16 + code] * absmax[r*(cols/64) + c/64],
// one F32 product (the CPU reference of the CUDA kernel, bit for bit).
void dequantize_lowra_rows(const LowraPacked& p, int64_t r0, int64_t r1, float* out);
// One row: out[c] = lut[code(c)] * absmax[c / 64] for c < cols, codes LSB first at `bits` (1, 2 or
// 4) from codes[0], lut the row's 16 slots, absmax its cols / 64 values (the helper both the row
// dequantizer above and the CPU op in kernels/lowra_dequant.h run).
void dequantize_lowra_row(const uint8_t* codes, int bits, const float* lut, const float* absmax, int64_t cols,
                          float* out);

}  // namespace qtrain::quant
