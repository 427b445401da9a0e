// CPU gemm through OpenBLAS (AVX2/AVX-512 kernels, see cpu/openblas.h), plus
// the bias add and its backward as plain loops.
#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/cpu/openblas.h"
#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"

namespace qtrain {

void gemm(Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  QT_DISPATCH_CUDA(c, gemm, c, a, b, trans_a, trans_b, alpha, beta);
  cpu::check_f32(c, "gemm c");
  cpu::check_f32(a, "gemm a");
  cpu::check_f32(b, "gemm b");
  auto cm = cpu::as_matrix(c, "gemm c"), am = cpu::as_matrix(a, "gemm a"), bm = cpu::as_matrix(b, "gemm b");
  const int64_t M = cm.rows, N = cm.cols;
  const int64_t K = trans_a ? am.rows : am.cols;
  const auto what = [&] {
    return "gemm: c " + shape_str(c.shape()) + ", a " + shape_str(a.shape()) + (trans_a ? "^T" : "") + ", b " +
           shape_str(b.shape()) + (trans_b ? "^T" : "");
  };
  QT_CHECK((trans_a ? am.cols : am.rows) == M, what());
  QT_CHECK((trans_b ? bm.cols : bm.rows) == K && (trans_b ? bm.rows : bm.cols) == N, what());
  QT_CHECK(M < (int64_t(1) << 31) && N < (int64_t(1) << 31) && K < (int64_t(1) << 31), what() + " too large");
  if (M == 0 || N == 0) return;
  // BLAS with beta == 0 overwrites c without reading it (NaNs in c are ignored), as torch does.
  cpu::openblas_sgemm(trans_a, trans_b, int(M), int(N), int(K), alpha, a.f32(), int(std::max<int64_t>(am.cols, 1)),
                      b.f32(), int(std::max<int64_t>(bm.cols, 1)), beta, c.f32(), int(N));
}

void add_bias(Tensor y, Tensor bias) {
  QT_DISPATCH_CUDA(y, add_bias, y, bias);
  cpu::check_f32(y, "add_bias y");
  cpu::check_f32(bias, "add_bias bias");
  auto ym = cpu::as_matrix(y, "add_bias y");
  check_shape(bias, {ym.cols}, "add_bias bias");
  float* py = y.f32();
  const float* pb = bias.f32();
#pragma omp parallel for if (ym.rows * ym.cols >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < ym.rows; ++n) {
    float* row = py + n * ym.cols;
    for (int64_t j = 0; j < ym.cols; ++j) row[j] += pb[j];
  }
}

void bias_backward(Tensor dbias, Tensor dy) {
  QT_DISPATCH_CUDA(dy, bias_backward, dbias, dy);
  cpu::check_f32(dbias, "bias_backward dbias");
  cpu::check_f32(dy, "bias_backward dy");
  auto m = cpu::as_matrix(dy, "bias_backward dy");
  check_shape(dbias, {m.cols}, "bias_backward dbias");
  const float* pdy = dy.f32();
  float* pdb = dbias.f32();
  // Each thread owns a block of columns and sums the rows in order (deterministic);
  // blocks keep the row walk cache-friendly; double keeps long sums accurate.
  constexpr int64_t kBlock = 256;
  const int64_t nblocks = (m.cols + kBlock - 1) / kBlock;
#pragma omp parallel for if (m.rows * m.cols >= cpu::kParallelMinWork)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t j0 = blk * kBlock, j1 = std::min(m.cols, j0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < m.rows; ++n) {
      const float* row = pdy + n * m.cols;
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += row[j];
    }
    for (int64_t j = j0; j < j1; ++j) pdb[j] += float(acc[j - j0]);
  }
}

}  // namespace qtrain
