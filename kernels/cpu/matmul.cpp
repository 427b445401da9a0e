// CPU gemm through OpenBLAS (AVX2/AVX-512 kernels, see cpu/openblas.h), plus
// the bias add and its backward as plain loops.
#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/cpu/openblas.h"
#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {
std::string gemm_shapes(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  return "gemm: c " + shape_str(c.shape()) + ", a " + shape_str(a.shape()) + (trans_a ? "^T" : "") + ", b " +
         shape_str(b.shape()) + (trans_b ? "^T" : "");
}

// Both backends: every operand a matrix (leading dims flattened) on c's
// device, op(a) [M,K] @ op(b) [K,N] into c [M,N].
struct GemmDims {
  int64_t M, N, K, lda, ldb;
};
GemmDims check_gemm(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const RowsCols cm = check_rows_cols(c, "gemm c"), am = check_rows_cols(a, "gemm a"), bm = check_rows_cols(b, "gemm b");
  check_on(a, c, "gemm a");
  check_on(b, c, "gemm b");
  const int64_t M = cm.rows, N = cm.cols;
  const int64_t K = trans_a ? am.rows : am.cols;
  QT_CHECK((trans_a ? am.cols : am.rows) == M, gemm_shapes(c, a, b, trans_a, trans_b));
  QT_CHECK((trans_b ? bm.cols : bm.rows) == K && (trans_b ? bm.rows : bm.cols) == N, gemm_shapes(c, a, b, trans_a, trans_b));
  return {M, N, K, am.cols, bm.cols};
}
}  // namespace

void gemm(Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  const auto [M, N, K, lda, ldb] = check_gemm(c, a, b, trans_a, trans_b);
  QT_DISPATCH_CUDA(c, gemm, c, a, b, trans_a, trans_b, alpha, beta);
  cpu::check_f32(c, "gemm c");
  cpu::check_f32(a, "gemm a");
  cpu::check_f32(b, "gemm b");
  QT_CHECK(M < (int64_t(1) << 31) && N < (int64_t(1) << 31) && K < (int64_t(1) << 31),
           gemm_shapes(c, a, b, trans_a, trans_b) + " too large for BLAS's int sizes");
  if (M == 0 || N == 0) return;
  // BLAS with beta == 0 overwrites c without reading it (NaNs in c are ignored), as torch does.
  cpu::openblas_sgemm(trans_a, trans_b, int(M), int(N), int(K), alpha, a.f32(), int(std::max<int64_t>(lda, 1)),
                      b.f32(), int(std::max<int64_t>(ldb, 1)), beta, c.f32(), int(N));
}

void gemm_bias(Tensor y, Tensor x, Tensor w, Tensor bias) {
  check_gemm(y, x, w, false, true);
  check_len(bias, y, y.size(-1), "gemm_bias bias");
  QT_DISPATCH_CUDA(y, gemm_bias, y, x, w, bias);
  gemm(y, x, w, false, true);
  add_bias(y, bias);
}

void add_bias(Tensor y, Tensor bias) {
  const RowsCols ym = check_rows_cols(y, "add_bias y", true);
  check_len(bias, y, ym.cols, "add_bias bias");
  QT_DISPATCH_CUDA(y, add_bias, y, bias);
  cpu::check_f32(y, "add_bias y");
  cpu::check_f32(bias, "add_bias bias");
  float* py = y.f32();
  const float* pb = bias.f32();
#pragma omp parallel for if (ym.rows * ym.cols >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < ym.rows; ++n) {
    float* row = py + n * ym.cols;
    for (int64_t j = 0; j < ym.cols; ++j) row[j] += pb[j];
  }
}

void bias_backward(Tensor dbias, Tensor dy) {
  const RowsCols m = check_rows_cols(dy, "bias_backward dy", true);
  check_len(dbias, dy, m.cols, "bias_backward dbias");
  QT_DISPATCH_CUDA(dy, bias_backward, dbias, dy);
  cpu::check_f32(dbias, "bias_backward dbias");
  cpu::check_f32(dy, "bias_backward dy");
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
