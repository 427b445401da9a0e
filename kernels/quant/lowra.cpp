#include "kernels/quant/lowra.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace qtrain::quant {

namespace {

std::string shape_str(int64_t rows, int64_t cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

void check_bits(int bits, const std::string& where) {
  if (bits != 1 && bits != 2 && bits != 4)
    throw Error("lowra: " + where + "bits " + std::to_string(bits) + " is not 1, 2 or 4");
}

// The K - 1 midpoints of K ascending levels, in double (where the sum of two floats of like
// magnitude is exact), padded to K with +inf so the search below is a fixed number of halvings.
template <int K>
std::array<double, K> midpoints(const float* m) {
  std::array<double, K> mid;
  for (int j = 0; j + 1 < K; ++j) mid[size_t(j)] = 0.5 * (double(m[j]) + double(m[j + 1]));
  mid[size_t(K - 1)] = std::numeric_limits<double>::infinity();
  return mid;
}

// The number of midpoints strictly below x: the nearest level, a tie going to the lower one.
// Each halving adds step times the 0/1 comparison instead of branching on it: weights fall on
// either side at random, and a branch there mispredicts often (2-bit fits ran 2.5x slower).
template <int K>
inline int nearest(const std::array<double, K>& mid, float x) {
  const double xd = x;
  int lo = 0;
  for (int step = K / 2; step > 0; step >>= 1) lo += step * int(mid[size_t(lo + step - 1)] < xd);
  return lo;
}

// Absmax of each 64-block of a row; non-finite weights are bad input (a NaN would vanish from
// the max and come back as a NaN code).
void block_absmax(const float* w, int64_t cols, float* a, bool* finite) {
  *finite = true;
  for (int64_t b = 0; b < cols / kLowraGroup; ++b) {
    float mx = 0.f;
    for (int64_t j = 0; j < kLowraGroup; ++j) {
      const float v = w[b * kLowraGroup + j];
      if (!std::isfinite(v)) *finite = false;
      mx = std::max(mx, std::fabs(v));
    }
    a[b] = mx;
  }
}

// x = w / absmax, 0 in a zero block (weight 0 there: its x counts for nothing).
inline float normalized(float w, float a) { return a > 0.f ? w / a : 0.f; }

// A row's codes at its width (K = 2^bits levels), LSB first, into zeroed bytes.
template <int K>
void pack_row(const float* w, const float* a, const float* m, int64_t cols, uint8_t* out) {
  constexpr int b = K == 2 ? 1 : K == 4 ? 2 : 4;
  const auto mid = midpoints<K>(m);
  for (int64_t c = 0; c < cols; ++c) {
    const int q = nearest<K>(mid, normalized(w[c], a[c / kLowraGroup]));
    out[c * b / 8] |= uint8_t(q << ((c * b) % 8));
  }
}

// One pass over a row under a mapping: the E-step (nearest level), the weighted objective and the
// weight-unit mse of that assignment, and the M-step's weighted sums per level.
template <int K>
struct Pass {
  double obj = 0;  // sum a (x - m)^2 / sum a
  double mse = 0;  // mean (w - m * a)^2, m * a in F32 as dequantize computes it
  std::array<double, K> sx{}, sw{};
};

template <int K>
Pass<K> run_pass(const float* w, const float* x, const float* a, int64_t cols, const float* m) {
  Pass<K> p;
  const auto mid = midpoints<K>(m);
  double obj = 0, sq = 0, wsum = 0;
  for (int64_t b = 0; b < cols / kLowraGroup; ++b) {
    const float ab = a[b];
    const double ad = ab;
    for (int64_t i = b * kLowraGroup; i < (b + 1) * kLowraGroup; ++i) {
      const int q = nearest<K>(mid, x[i]);
      const double d = double(x[i]) - double(m[q]);
      obj += ad * d * d;
      p.sx[size_t(q)] += ad * double(x[i]);
      p.sw[size_t(q)] += ad;
      const double e = double(w[i]) - double(m[q] * ab);
      sq += e * e;
    }
    wsum += ad * double(kLowraGroup);
  }
  p.obj = wsum > 0 ? obj / wsum : 0.0;
  p.mse = sq / double(cols);
  return p;
}

template <int K>
LowraFit fit_impl(const float* w, const float* x, const float* a, int64_t cols, int bits, int iters) {
  LowraFit fit;
  fit.mapping = lowra_init_mapping(bits);
  QT_CHECK(int(fit.mapping.size()) == K, "lowra: init mapping size");
  Pass<K> cur = run_pass<K>(w, x, a, cols, fit.mapping.data());
  fit.wmse.push_back(cur.obj);
  std::array<float, K> next;
  for (int it = 0; it < iters; ++it) {
    // M-step: the weighted centroid of each level's points; a level with none keeps its value.
    for (int j = 0; j < K; ++j)
      next[size_t(j)] = cur.sw[size_t(j)] > 0 ? float(cur.sx[size_t(j)] / cur.sw[size_t(j)]) : fit.mapping[size_t(j)];
    // Centroids of consecutive intervals are already ascending; sorting only guards the rounding.
    std::sort(next.begin(), next.end());
    Pass<K> np = run_pass<K>(w, x, a, cols, next.data());
    fit.wmse.push_back(np.obj);
    if (!(np.obj < cur.obj)) break;  // stopped going down: keep the previous (best) mapping
    fit.mapping.assign(next.begin(), next.end());
    cur = np;
  }
  fit.mse = cur.mse;
  return fit;
}

}  // namespace

std::vector<float> lowra_init_mapping(int bits) {
  check_bits(bits, "");
  if (bits == 1) return {-1.f, 1.f};
  if (bits == 2) return {-1.f, 0.f, 0.3379f, 1.f};
  return {-1.0f,       -0.6961928f, -0.5250731f, -0.3949175f, -0.28444138f, -0.18477343f,
          -0.09105f,   0.0f,        0.0795803f,  0.1609302f,  0.2461123f,   0.33791524f,
          0.44070983f, 0.562617f,   0.72295684f, 1.0f};
}

LowraFit lowra_fit_row(const float* w, int64_t cols, int bits, int iters) {
  check_bits(bits, "");
  if (cols <= 0 || cols % kLowraGroup != 0)
    throw Error("lowra: a row of " + std::to_string(cols) + " weights is not a positive multiple of 64");
  if (iters < 0) throw Error("lowra: iters " + std::to_string(iters) + " is negative");
  QT_CHECK(w != nullptr, "lowra: null row");
  std::vector<float> a(static_cast<size_t>(cols / kLowraGroup)), x(static_cast<size_t>(cols));
  bool finite = true;
  block_absmax(w, cols, a.data(), &finite);
  if (!finite) throw Error("lowra: the row has a non-finite weight");
  for (int64_t i = 0; i < cols; ++i) x[size_t(i)] = normalized(w[i], a[size_t(i / kLowraGroup)]);
  switch (bits) {
    case 1: return fit_impl<2>(w, x.data(), a.data(), cols, bits, iters);
    case 2: return fit_impl<4>(w, x.data(), a.data(), cols, bits, iters);
    default: return fit_impl<16>(w, x.data(), a.data(), cols, bits, iters);
  }
}

size_t LowraPacked::bytes() const {
  return codes.size() + (lut.size() + absmax.size()) * sizeof(float) + row_offset.size() * sizeof(int64_t) +
         bits.size();
}

double LowraPacked::avg_bits() const {
  return rows * cols > 0 ? 8.0 * double(codes.size()) / double(rows * cols) : 0.0;
}

int LowraPacked::code(int64_t r, int64_t c) const {
  QT_CHECK(r >= 0 && r < rows && c >= 0 && c < cols, "lowra: code (" + std::to_string(r) + ", " +
                                                         std::to_string(c) + ") outside " + shape_str(rows, cols));
  const int b = bits[size_t(r)];
  const uint8_t byte = codes[size_t(row_offset[size_t(r)] + c * b / 8)];
  return (byte >> ((c * b) % 8)) & ((1 << b) - 1);
}

LowraPacked quantize_lowra(const float* w, int64_t rows, int64_t cols, const uint8_t* bits, const float* lut) {
  if (rows < 0 || cols <= 0 || cols % kLowraGroup != 0)
    throw Error("lowra: a " + shape_str(rows, cols) + " weight: the row length is not a positive multiple of 64");
  QT_CHECK(rows == 0 || (w && bits && lut), "lowra: null input");
  LowraPacked p;
  p.rows = rows;
  p.cols = cols;
  p.bits.assign(bits, bits + rows);
  p.row_offset.assign(size_t(rows + 1), 0);
  p.lut.assign(size_t(rows * kLowraLut), 0.f);
  for (int64_t r = 0; r < rows; ++r) {
    const int b = bits[r];
    check_bits(b, "row " + std::to_string(r) + ": ");
    const float* m = lut + r * kLowraLut;
    for (int j = 0; j < (1 << b); ++j) {
      if (!std::isfinite(m[j]) || (j > 0 && m[j] < m[j - 1]))
        throw Error("lowra: row " + std::to_string(r) + "'s LUT is not finite and ascending at slot " +
                    std::to_string(j));
      p.lut[size_t(r * kLowraLut + j)] = m[j];
    }
    p.row_offset[size_t(r + 1)] = p.row_offset[size_t(r)] + cols * b / 8;
  }
  const int64_t nb = cols / kLowraGroup;
  p.codes.assign(size_t(p.row_offset[size_t(rows)]), 0);
  p.absmax.assign(size_t(rows * nb), 0.f);
  // Rows are independent; a bad weight is flagged and thrown outside the parallel loop.
  std::vector<uint8_t> bad(size_t(rows), 0);
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    float* a = p.absmax.data() + r * nb;
    bool finite = true;
    block_absmax(wr, cols, a, &finite);
    if (!finite) {
      bad[size_t(r)] = 1;
      continue;
    }
    const float* m = p.lut.data() + r * kLowraLut;
    uint8_t* out = p.codes.data() + p.row_offset[size_t(r)];
    switch (p.bits[size_t(r)]) {
      case 1: pack_row<2>(wr, a, m, cols, out); break;
      case 2: pack_row<4>(wr, a, m, cols, out); break;
      default: pack_row<16>(wr, a, m, cols, out); break;
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    if (bad[size_t(r)]) throw Error("lowra: row " + std::to_string(r) + " of a " + shape_str(rows, cols) +
                                    " weight has a non-finite value");
  return p;
}

void dequantize_lowra_row(const uint8_t* codes, int bits, const float* lut, const float* absmax, int64_t cols,
                          float* out) {
  const int b = bits, mask = (1 << b) - 1;
  for (int64_t c = 0; c < cols; ++c) {
    const int q = (codes[c * b / 8] >> ((c * b) % 8)) & mask;
    out[c] = lut[q] * absmax[c / kLowraGroup];
  }
}

void dequantize_lowra_rows(const LowraPacked& p, int64_t r0, int64_t r1, float* out) {
  QT_CHECK(0 <= r0 && r0 <= r1 && r1 <= p.rows, "lowra: rows [" + std::to_string(r0) + ", " + std::to_string(r1) +
                                                     ") outside " + shape_str(p.rows, p.cols));
  const int64_t cols = p.cols, nb = cols / kLowraGroup;
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols >= (int64_t(1) << 15))
  for (int64_t r = r0; r < r1; ++r)
    dequantize_lowra_row(p.codes.data() + p.row_offset[size_t(r)], p.bits[size_t(r)], p.lut.data() + r * kLowraLut,
                         p.absmax.data() + r * nb, cols, out + (r - r0) * cols);
}

}  // namespace qtrain::quant
