// Column groups (Q-BLoRA's pool and repeat-interleave): the fp32 references.
// Shapes are checked here, before the dispatch, so both backends refuse the same calls.
#include "kernels/col_groups.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {
// The row count of wide [N, k W'] and narrow [N, W'] (W' = narrow's last size).
int64_t rows_of(const Tensor& wide, const Tensor& narrow, int64_t k, const char* what) {
  QT_CHECK(wide.defined() && narrow.defined() && wide.ndim() >= 1 && narrow.ndim() >= 1,
           std::string(what) + ": undefined tensor");
  check_on(narrow, wide, what);
  QT_CHECK(k >= 1 && wide.size(-1) == k * narrow.size(-1) && wide.numel() == k * narrow.numel(),
           std::string(what) + ": " + shape_str(wide.shape()) + " is not " + shape_str(narrow.shape()) +
               " with its last size times " + std::to_string(k));
  return narrow.numel() / narrow.size(-1);
}
}  // namespace

void sum_col_groups(Tensor out, Tensor x, int64_t k, float alpha) {
  const int64_t N = rows_of(x, out, k, "sum_col_groups");
  QT_DISPATCH_CUDA(x, sum_col_groups, out, x, k, alpha);
  cpu::check_f32(x, "sum_col_groups x");
  cpu::check_f32(out, "sum_col_groups out");
  const int64_t W = out.size(-1);
  const float* px = x.f32();
  float* po = out.f32();
#pragma omp parallel for if (N * W * k >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) {
      float s = 0.f;
      for (int64_t t = 0; t < k; ++t) s += px[(n * W + j) * k + t];
      po[n * W + j] = alpha * s;
    }
}

void add_repeat_cols(Tensor out, Tensor x, int64_t k, float alpha) {
  const int64_t N = rows_of(out, x, k, "add_repeat_cols");
  QT_DISPATCH_CUDA(x, add_repeat_cols, out, x, k, alpha);
  cpu::check_f32(x, "add_repeat_cols x");
  cpu::check_f32(out, "add_repeat_cols out");
  const int64_t W = x.size(-1);
  const float* px = x.f32();
  float* po = out.f32();
#pragma omp parallel for if (N * W * k >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j)
      for (int64_t t = 0; t < k; ++t) po[(n * W + j) * k + t] += alpha * px[n * W + j];
}

}  // namespace qtrain
