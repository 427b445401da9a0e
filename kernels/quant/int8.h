// Vector-wise int8 weights (bitsandbytes int8_vectorwise_quant on the weight):
// per output row absmax (fp32), q = round_half_even(w * (127 / absmax)),
// dequantized as q * absmax * (1/127) (bnb's constant 7.874015718698502e-3).
//
// LLM.int8 forward (int8_matmul_decomposed, CPU): input columns whose max |x|
// over the batch rows exceeds `threshold` are outliers; they are multiplied in
// fp32 with the dequantized weight columns. The other columns: x rows are
// quantized vector-wise like the weight (outlier columns zeroed), int32 dot
// products, rescaled by xabs[i] * wabs[o] / 127^2 - as bnb's MatMul8bitLt.
// The input gradient (as bnb) uses the dequantized weight in a dense gemm.
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

// y[n, rows] = x[n, cols] W^T, LLM.int8 decomposition with `threshold`
// (<= 0: no outlier columns, every column is quantized - bnb's threshold 0).
void int8_matmul_decomposed(const int8_t* q, const float* absmax, int64_t rows, int64_t cols, const float* x,
                            int64_t n, float* y, float threshold);
inline void int8_matmul_decomposed(const Int8Rows& w, const float* x, int64_t n, float* y, float threshold = 6.f) {
  int8_matmul_decomposed(w.q.data(), w.absmax.data(), w.rows, w.cols, x, n, y, threshold);
}

}  // namespace qtrain::quant
