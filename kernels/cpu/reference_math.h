// Small building blocks shared by the fp32 reference kernels in kernels/cpu/.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/tensor.h"

namespace qtrain::cpu {

// Below this much work (about one op per element) a parallel region costs more
// than it saves, all the more on a loaded machine, where every barrier waits
// for a descheduled thread. Each `omp parallel` takes `if (work >= this)`.
constexpr int64_t kParallelMinWork = 1 << 15;

// A tensor seen as a row-major matrix: all leading dims flattened into rows.
struct MatShape {
  int64_t rows = 0, cols = 0;
};

inline MatShape as_matrix(const Tensor& t, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(t.ndim() >= 1, std::string(what) + ": needs at least one dimension");
  int64_t cols = t.size(-1);
  return {cols ? t.numel() / cols : 0, cols};
}

// Entry check of every CPU kernel: defined, on the host, F32.
inline void check_f32(const Tensor& t, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(!t.is_cuda(), std::string(what) + ": CUDA tensor passed to a CPU kernel");
  QT_CHECK(t.dtype() == DType::F32, std::string(what) + ": CPU kernels take F32, got " + dtype_name(t.dtype()));
}

inline void check_numel(const Tensor& t, int64_t n, const char* what) {
  QT_CHECK(t.numel() == n, std::string(what) + ": " + std::to_string(t.numel()) + " elements, expected " +
                               std::to_string(n));
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

}  // namespace qtrain::cpu
