#include "kernels/quant/hqq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace qtrain::quant {

namespace {

// hqq's shrink_lp_op for lp_norm != 1: sign(x) * max(|x| - (1/beta) |x|^(p-1), 0).
float shrink_lp(float x, float inv_beta, float p) {
  const float a = std::fabs(x);
  const float out = std::max(a - inv_beta * std::pow(a, p - 1.f), 0.f);
  return x > 0.f ? out : (x < 0.f ? -out : 0.f);
}

float quant_code(float w, float scale, float zero, float qmax) {
  const float v = std::nearbyint(w * scale + zero);  // torch.round: half to even
  return std::min(std::max(v, 0.f), qmax);
}

}  // namespace

int HqqPacked::code(int64_t r, int64_t c) const {
  const int64_t i = r * cols + c;
  const uint8_t b = codes[size_t(i * bits / 8)];
  if (bits == 4) return (i & 1) ? (b & 0x0F) : (b >> 4);
  return (b >> (6 - 2 * (i & 3))) & 0x3;
}

HqqPacked quantize_hqq(const float* w, int64_t rows, int64_t cols, int bits) {
  if (bits != 4 && bits != 2) throw Error("hqq: bits " + std::to_string(bits) + " is not 4 or 2");
  QT_CHECK((rows * cols) % kHqqGroup == 0 && cols % (8 / bits) == 0,
           "hqq: a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] weight is not whole 64-weight groups");
  const int64_t ng = rows * cols / kHqqGroup, n = rows * cols;
  const float qmax = float((1 << bits) - 1);
  // Quantizer.quantize: min-max init (scale here is hqq's inverse scale, w * scale + zero).
  std::vector<float> scale(static_cast<size_t>(ng)), zero(static_cast<size_t>(ng));
  // Groups are independent in every pass below, so they run on all cores (a LLaMA-7B load is ~1e8
  // groups x 20 iterations x 64 pow()s: an hour on one core). Only the early stop looks across
  // groups; its error is summed in group order, so the result does not depend on the thread count.
#pragma omp parallel for schedule(static) if (ng >= 1024)
  for (int64_t g = 0; g < ng; ++g) {
    const float* x = w + g * kHqqGroup;
    const auto [mn, mx] = std::minmax_element(x, x + kHqqGroup);
    const float denom = *mx - *mn;
    float s = (1.f / denom) * qmax;  // torch evaluates int / tensor as reciprocal(tensor) * int
    if (std::fabs(denom) <= 1e-4f) s = 1.f;
    s = std::min(s, 2e4f);
    float z = -*mn * s;
    if (bits == 4) z = std::nearbyint(z);  // hqq_base_quant_config: round_zero for 4 bits
    scale[size_t(g)] = s;
    zero[size_t(g)] = z;
  }
  // optimize_weights_proximal (legacy): lp_norm 0.7, beta 10, iters 20, early stop on the global mean error.
  const float inv_beta = float(1.0 / 10.0), p = 0.7f;
  double best = std::numeric_limits<double>::infinity();
  std::vector<float> next(static_cast<size_t>(ng));
  std::vector<double> gerr(static_cast<size_t>(ng));
  for (int it = 0; it < 20; ++it) {
#pragma omp parallel for schedule(static) if (ng >= 1024)
    for (int64_t g = 0; g < ng; ++g) {
      const float* x = w + g * kHqqGroup;
      const float s = scale[size_t(g)], z = zero[size_t(g)];
      double acc = 0, e = 0;
      for (int64_t j = 0; j < kHqqGroup; ++j) {
        const float q = quant_code(x[j], s, z, qmax);
        const float wr = (q - z) / s;
        const float we = shrink_lp(x[j] - wr, inv_beta, p);
        acc += double(q - (x[j] - we) * s);
        e += double(std::fabs(x[j] - wr));
      }
      next[size_t(g)] = float(acc / double(kHqqGroup));
      gerr[size_t(g)] = e;
    }
    double err = 0;
    for (double e : gerr) err += e;  // group order, whatever the threads
    zero.swap(next);  // hqq updates the zero before it checks the error
    err /= double(n);
    if (err < best) best = err;
    else break;
  }
  HqqPacked out;
  out.bits = bits;
  out.rows = rows;
  out.cols = cols;
  out.codes.assign(size_t(rows * out.row_bytes()), 0);
  const int per_byte = 8 / bits;
  // A group's 64 codes fill whole bytes, so no two groups write the same byte.
#pragma omp parallel for schedule(static) if (ng >= 1024)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t i = g * kHqqGroup; i < (g + 1) * kHqqGroup; ++i) {
      const auto q = uint8_t(quant_code(w[i], scale[size_t(g)], zero[size_t(g)], qmax));
      const int shift = bits * (per_byte - 1 - int(i % per_byte));
      out.codes[size_t(i / per_byte)] |= uint8_t(q << shift);
    }
  out.scale.resize(size_t(ng));
  for (int64_t g = 0; g < ng; ++g) out.scale[size_t(g)] = 1.f / scale[size_t(g)];
  out.zero = std::move(zero);
  return out;
}

void dequantize_hqq_flat(const uint8_t* codes, const float* scale, const float* zero, int bits, int64_t i0,
                         int64_t n, float* out) {
  const int per_byte = 8 / bits, mask = (1 << bits) - 1;
  for (int64_t i = i0; i < i0 + n; ++i) {
    const int shift = bits * (per_byte - 1 - int(i % per_byte));
    const int q = (codes[i / per_byte] >> shift) & mask;
    const int64_t g = i / kHqqGroup;
    out[i - i0] = (float(q) - zero[g]) * scale[g];
  }
}

void dequantize_hqq_rows(const HqqPacked& p, int64_t r0, int64_t r1, float* out) {
#pragma omp parallel for schedule(static) if ((r1 - r0) * p.cols >= (int64_t(1) << 15))
  for (int64_t r = r0; r < r1; ++r)
    dequantize_hqq_flat(p.codes.data(), p.scale.data(), p.zero.data(), p.bits, r * p.cols, p.cols,
                        out + (r - r0) * p.cols);
}

}  // namespace qtrain::quant
