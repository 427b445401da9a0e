#include "kernels/quant/int8.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "kernels/quant/decode.h"

namespace qtrain::quant {

Int8Rows quantize_int8_rows(const float* w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) throw Error("quantize_int8_rows: empty weight");
  Int8Rows p;
  p.rows = rows;
  p.cols = cols;
  p.q.resize(size_t(rows * cols));
  p.absmax.resize(size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = w + r * cols;
    float am = 0.f;
    for (int64_t c = 0; c < cols; ++c) am = std::max(am, std::fabs(src[c]));
    p.absmax[size_t(r)] = am;
    // an all-zero row: bnb would produce NaN codes; zeros are what it means
    float scale = am > 0.f ? 127.f / am : 0.f;
    for (int64_t c = 0; c < cols; ++c) p.q[size_t(r * cols + c)] = int8_t(std::nearbyint(src[c] * scale));
  }
  return p;
}

void dequantize_int8_rows(const Int8Rows& p, int64_t r0, int64_t r1, float* out) {
  QT_CHECK(0 <= r0 && r0 <= r1 && r1 <= p.rows, "dequantize_int8_rows: bad row range");
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < p.cols; ++c)
      out[(r - r0) * p.cols + c] = int8_value(p.q[size_t(r * p.cols + c)], p.absmax[size_t(r)]);
}

void int8_matmul_decomposed(const int8_t* q, const float* absmax, int64_t rows, int64_t cols, const float* x,
                            int64_t n, float* y, float threshold) {
  const int64_t in = cols, out = rows;
  std::vector<uint8_t> outlier(size_t(in), 0);
  std::vector<int64_t> outlier_cols;
  for (int64_t j = 0; j < in && threshold > 0.f; ++j) {
    float m = 0.f;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i * in + j]));
    if (m > threshold) {
      outlier[size_t(j)] = 1;
      outlier_cols.push_back(j);
    }
  }
  std::vector<int8_t> xq(size_t(n * in));
  std::vector<float> xabs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float am = 0.f;
    for (int64_t j = 0; j < in; ++j)
      if (!outlier[size_t(j)]) am = std::max(am, std::fabs(x[i * in + j]));
    xabs[size_t(i)] = am;
    float scale = am > 0.f ? 127.f / am : 0.f;
    for (int64_t j = 0; j < in; ++j)
      xq[size_t(i * in + j)] = outlier[size_t(j)] ? 0 : int8_t(std::nearbyint(x[i * in + j] * scale));
  }
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o) {
    const int8_t* wr = q + o * in;
    float wdeq = absmax[size_t(o)] * kInt8Inv127;
    for (int64_t i = 0; i < n; ++i) {
      const int8_t* xr = xq.data() + i * in;
      int32_t acc = 0;
      for (int64_t j = 0; j < in; ++j) acc += int32_t(xr[j]) * int32_t(wr[j]);
      float v = float(acc) * (xabs[size_t(i)] * kInt8Inv127) * wdeq;
      for (int64_t j : outlier_cols) v += x[i * in + j] * (float(wr[j]) * wdeq);
      y[i * out + o] = v;
    }
  }
}

}  // namespace qtrain::quant
