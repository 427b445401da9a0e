// Small building blocks shared by the fp32 reference kernels in kernels/cpu/.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/op_checks.h"
#include "kernels/tensor.h"

namespace qtrain::cpu {

// Below this much work (about one op per element) a parallel region costs more
// than it saves, all the more on a loaded machine, where every barrier waits
// for a descheduled thread. Each `omp parallel` takes `if (work >= this)`.
constexpr int64_t kParallelMinWork = 1 << 15;

// A tensor seen as a row-major matrix: all leading dims flattened into rows.
using MatShape = RowsCols;
inline MatShape as_matrix(const Tensor& t, const char* what) { return check_rows_cols(t, what); }

// Entry check of every CPU kernel: defined, on the host, F32.
inline void check_f32(const Tensor& t, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(!t.is_cuda(), std::string(what) + ": CUDA tensor passed to a CPU kernel");
  QT_CHECK(t.dtype() == DType::F32, std::string(what) + ": CPU kernels take F32, got " + dtype_name(t.dtype()));
}

// Dot product accumulated in fp32. `omp simd` lets the compiler vectorise the
// reduction (a fixed order per build, so results stay deterministic).
inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y += a * x
inline void axpy_row(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// c ? a : b without a branch, so `omp simd` loops vectorise at -O2 (GCC does
// not if-convert float selects there).
inline float select(bool c, float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  const int32_t m = -int32_t(c);
  const int32_t r = (ia & m) | (ib & ~m);
  float f;
  std::memcpy(&f, &r, 4);
  return f;
}

inline float max_fast(float a, float b) { return select(b > a, b, a); }

// e^x in fp32 for `omp simd` loops (glibc's expf is scalar): Cephes' expf,
// within 2 ulp of exp over the float range; 0 below -87.3 (-inf included),
// +inf above 88.7. Round-to-nearest uses the 1.5*2^23 trick instead of floor()
// so that it vectorises with plain SSE2.
inline float exp_fast(float x) {
  constexpr float kLo = -87.3f, kHi = 88.7f;
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23, bits 0x4B400000
  const float xc = select(x < kLo, kLo, select(x > kHi, kHi, x));
  const float shifted = xc * kLog2e + kRound;
  const float n = shifted - kRound;  // round(x / ln 2)
  int32_t ni;
  std::memcpy(&ni, &shifted, 4);
  ni -= 0x4B400000;                                 // the integer n
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln2 / 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.f;
  // 2^n as two factors, so that n = 128 (x near 88.7) fits the exponent field.
  const int32_t half = ni >> 1;
  const int32_t b1 = (half + 127) << 23, b2 = (ni - half + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return select(x < kLo, 0.f, select(x > kHi, __builtin_inff(), er * s1 * s2));
}

}  // namespace qtrain::cpu
