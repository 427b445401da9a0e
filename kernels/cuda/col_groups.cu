// Column groups (Q-BLoRA's pool and repeat-interleave) on the GPU; references
// in kernels/cpu/col_groups.cpp. Both are memory-bound: one thread per element
// of the narrow side (a group sum) or of the wide side (one repeated add).
#include "kernels/cuda/common.cuh"
#include "kernels/col_groups.h"

namespace qtrain::cuda {
namespace {

__global__ void sum_col_groups_kernel(FloatPtr out, FloatPtr x, int64_t k, float alpha, int64_t n) {
  QT_GRID_STRIDE(i, n) {
    float s = 0.f;
    for (int64_t t = 0; t < k; ++t) s += x.ld(i * k + t);
    out.st(i, alpha * s);
  }
}

__global__ void add_repeat_cols_kernel(FloatPtr out, FloatPtr x, int64_t k, float alpha, int64_t n) {
  QT_GRID_STRIDE(i, n)
    out.st(i, out.ld(i) + alpha * x.ld(i / k));
}

}  // namespace

void sum_col_groups(Tensor out, Tensor x, int64_t k, float alpha) {
  const int64_t n = out.numel();
  if (n == 0) return;
  sum_col_groups_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "sum_col_groups out"),
                                                                fptr(x, "sum_col_groups x"), k, alpha, n);
  CUDA_CHECK_LAUNCH("sum_col_groups");
}

void add_repeat_cols(Tensor out, Tensor x, int64_t k, float alpha) {
  const int64_t n = out.numel();
  if (n == 0) return;
  add_repeat_cols_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "add_repeat_cols out"),
                                                                 fptr(x, "add_repeat_cols x"), k, alpha, n);
  CUDA_CHECK_LAUNCH("add_repeat_cols");
}

}  // namespace qtrain::cuda
