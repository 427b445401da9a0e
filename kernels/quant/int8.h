// Vector-wise int8 weights (bitsandbytes int8_vectorwise_quant on the weight):
// per output row absmax (fp32), q = round_half_even(w * (127 / absmax)),
// dequantized as q * absmax * (1/127) (bnb's constant 7.874015718698502e-3).
//
// LLM.int8 outlier decomposition is NOT implemented yet: Int8Weight
// dequantizes rows to the compute dtype and runs a dense gemm, i.e. every
// input column runs "in full precision" against the int8-rounded weight.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qtrain::quant {

struct Int8Rows {
  int64_t rows = 0, cols = 0;
  std::vector<int8_t> q;        // [rows, cols]
  std::vector<float> absmax;    // [rows]
  size_t bytes() const { return q.size() + absmax.size() * 4; }
};

Int8Rows quantize_int8_rows(const float* w, int64_t rows, int64_t cols);
// Rows [r0, r1) dequantized into out ((r1 - r0) * cols floats).
void dequantize_int8_rows(const Int8Rows& p, int64_t r0, int64_t r1, float* out);

}  // namespace qtrain::quant
