#include "kernels/quant/ternary.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace qtrain::quant {

float ternary_scale(const float* w, int64_t n) {
  double sum = 0;  // in double: a 7B matrix's mean is exact to float precision
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(w[i]);
  return std::max(float(sum / double(std::max<int64_t>(n, 1))), 1e-5f);
}

int ternary_level(float v, float inv_scale) { return int(std::clamp(std::nearbyint(v * inv_scale), -1.f, 1.f)); }

PackedTernary quantize_ternary(const float* w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) throw Error("quantize_ternary: empty weight");
  PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.scale = ternary_scale(w, rows * cols);
  const float inv = 1.f / p.scale;
  const int64_t rb = PackedTernary::row_bytes(cols);
  p.codes.assign(size_t(rows * rb), 0);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = p.codes.data() + r * rb;
    for (int64_t c = 0; c < rb * 4; ++c) {
      const int code = c < cols ? ternary_level(w[r * cols + c], inv) + 1 : 1;
      row[(c / 16) * 4 + c % 4] |= uint8_t(code << (2 * ((c % 16) / 4)));
    }
  }
  return p;
}

}  // namespace qtrain::quant
