#include "kernels/quant/hqq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace qtrain::quant {

namespace {

// hqq's shrink_lp_op for lp_norm != 1: sign(x) * max(|x| - (1/beta) |x|^(p-1), 0).
// |x| - (1/beta) |x|^(p-1) rises with |x| and crosses 0 at a* = (1/beta)^(1/(2-p))
// (0.17 for beta 10, p 0.7). At or below zero_below = 0.9 a* it is below
// -0.13 a*, far past any rounding, so the result there is exactly 0: the solver
// step skips the pow()s of a group whose residuals all sit there, which for LLM
// weights (~0.02, residuals under half a quantization step) is every group.
struct Shrink {
  float inv_beta, p, zero_below;
  Shrink(float inv_beta_, float p_)
      : inv_beta(inv_beta_), p(p_), zero_below(0.9f * float(std::pow(double(inv_beta_), 1.0 / (2.0 - double(p_))))) {}
  float operator()(float x) const {
    const float a = std::fabs(x);
    const float out = std::max(a - inv_beta * std::pow(a, p - 1.f), 0.f);
    return x > 0.f ? out : (x < 0.f ? -out : 0.f);
  }
};

// torch.round (half to even) of w * scale + zero, clamped to [0, qmax]. The value
// is first clamped to [-1, qmax + 1], which changes no result, and then rounded
// by adding and subtracting 1.5 * 2^23: exact for magnitudes below 2^22, in the
// nearest-even mode, and no libm call (x86-64's baseline has no roundss, and
// nearbyint() was most of the solver's time).
inline float quant_code(float w, float scale, float zero, float qmax) {
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23
  const float v = std::min(std::max(w * scale + zero, -1.f), qmax + 1.f);
  const float r = (v + kRound) - kRound;
  return std::min(std::max(r, 0.f), qmax);
}

// One step of optimize_weights_proximal for one group: the sums, in element order
// and in double, of the float terms q - (x - shrink(x - w_r)) s (64 times the new
// zero) and |x - w_r| (the group's error). The terms come from a vectorizable
// pass; the shrink's pow() runs only for a group with a residual above
// Shrink::zero_below (below it the shrink is 0 and x - 0 is x: the same terms,
// bit for bit); the sums stay sequential, so the result is the plain loop's to
// the last bit (~5x faster on one core).
struct StepSums {
  double acc, err;
};
StepSums proximal_step(const float* x, float s, float z, float qmax, const Shrink& shrink) {
  float q[kHqqGroup], d[kHqqGroup], t[kHqqGroup];
  bool big = false;
#pragma omp simd reduction(|| : big)
  for (int j = 0; j < kHqqGroup; ++j) {
    q[j] = quant_code(x[j], s, z, qmax);
    d[j] = x[j] - (q[j] - z) / s;  // x - w_r
    t[j] = q[j] - x[j] * s;        // the term when the shrink is 0
    big = big || std::fabs(d[j]) > shrink.zero_below;
  }
  if (big)
    for (int j = 0; j < kHqqGroup; ++j) t[j] = q[j] - (x[j] - shrink(d[j])) * s;
  StepSums r{0, 0};
  for (int j = 0; j < kHqqGroup; ++j) {
    r.acc += double(t[j]);
    r.err += double(std::fabs(d[j]));
  }
  return r;
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
  // groups x 20 iterations of 64 weights). Only the early stop looks across groups; its error is
  // summed in group order, so the result does not depend on the thread count.
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
  const Shrink shrink_lp(float(1.0 / 10.0), 0.7f);
  double best = std::numeric_limits<double>::infinity();
  std::vector<float> next(static_cast<size_t>(ng));
  std::vector<double> gerr(static_cast<size_t>(ng));
  for (int it = 0; it < 20; ++it) {
#pragma omp parallel for schedule(static) if (ng >= 1024)
    for (int64_t g = 0; g < ng; ++g) {
      const float* x = w + g * kHqqGroup;
      const StepSums r = proximal_step(x, scale[size_t(g)], zero[size_t(g)], qmax, shrink_lp);
      next[size_t(g)] = float(r.acc / double(kHqqGroup));
      gerr[size_t(g)] = r.err;
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
