#include "kernels/quant/int8.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

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
      out[(r - r0) * p.cols + c] = float(p.q[size_t(r * p.cols + c)]) * p.absmax[size_t(r)] * 7.874015718698502e-3f;
}

}  // namespace qtrain::quant
