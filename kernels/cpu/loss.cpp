// LM head + softmax cross-entropy, chunked over rows: per chunk of R
// predicted rows, gemm the logits into an [R, V] scratch, turn each row
// into its loss and (p - onehot) * grad_scale in place, then gemm that into dx
// and dw. The full [N, V] logits never exist.
#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loss_chunks.h"
#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"
#include "kernels/matmul.h"

namespace qtrain {

namespace {
// Rows per chunk: as many as fit a 64 MB logits scratch (341 at V=49152),
// at least 64. Fewer, larger gemms run about twice as fast as 64-row ones,
// and each chunk re-reads all of w (and re-writes dw).
int64_t default_chunk_rows(int64_t V) {
  constexpr int64_t kScratchFloats = int64_t(16) << 20;
  return std::max<int64_t>(64, kScratchFloats / std::max<int64_t>(V, 1));
}
// What both backends need: x [N,C] (leading dims flattened), w [V,C], I32
// targets of N values, dx like x and dw like w when asked for, all on x's
// device. The CUDA twin adds its dtypes, the reference F32 and the target range.
RowsCols check_ce_args(const Tensor& dx, const Tensor& dw, const Tensor& x, const Tensor& w, const Tensor& targets) {
  const RowsCols m = check_rows_cols(x, "cross_entropy x");
  check_on(w, x, "cross_entropy w");
  QT_CHECK(w.ndim() == 2 && w.size(1) == m.cols,
           "cross_entropy: w " + shape_str(w.shape()) + " for x " + shape_str(x.shape()) + ", expected [V," +
               std::to_string(m.cols) + "]");
  check_len(targets, x, m.rows, "cross_entropy targets");
  QT_CHECK(targets.dtype() == DType::I32, std::string("cross_entropy targets: expected I32, got ") +
                                              dtype_name(targets.dtype()));
  if (dx.defined()) check_numel_like(dx, x, "cross_entropy dx");
  if (dw.defined()) check_like(dw, w, "cross_entropy dw");
  return m;
}

}  // namespace

double lm_head_cross_entropy(Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale) {
  check_ce_args(dx, dw, x, w, targets);
  QT_DISPATCH_CUDA(x, lm_head_cross_entropy, dx, dw, x, w, targets, grad_scale);
  return cpu::lm_head_cross_entropy_chunked(dx, dw, x, w, targets, grad_scale, default_chunk_rows(w.size(0)));
}

double cpu::lm_head_cross_entropy_chunked(Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets,
                                          float grad_scale, int64_t chunk_rows) {
  const RowsCols m = check_ce_args(dx, dw, x, w, targets);  // the public op's checks; tests call this directly
  const int64_t N = m.rows, C = m.cols, V = w.size(0);
  cpu::check_f32(x, "cross_entropy x");
  cpu::check_f32(w, "cross_entropy w");
  if (dx.defined()) cpu::check_f32(dx, "cross_entropy dx");
  if (dw.defined()) cpu::check_f32(dw, "cross_entropy dw");
  const int32_t* tg = targets.i32();
  std::vector<int64_t> active;  // rows that predict a token
  for (int64_t n = 0; n < N; ++n) {
    if (tg[n] == kIgnoreIndex) continue;
    QT_CHECK(tg[n] >= 0 && tg[n] < V, "cross_entropy: target " + std::to_string(tg[n]) + " outside [0," +
                                          std::to_string(V) + ")");
    active.push_back(n);
  }
  if (dx.defined()) dx.zero_();  // ignored rows get a zero gradient
  const bool want_grad = dx.defined() || dw.defined();

  QT_CHECK(chunk_rows > 0, "cross_entropy: chunk_rows must be positive");
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(chunk_rows, int64_t(active.size())));
  Tensor xc = Tensor::empty({chunk, C}, DType::F32);
  Tensor logits = Tensor::empty({chunk, V}, DType::F32);
  Tensor dxc = dx.defined() ? Tensor::empty({chunk, C}, DType::F32) : Tensor();
  std::vector<double> row_loss(active.size());
  const float* px = x.f32();

  for (size_t c0 = 0; c0 < active.size(); c0 += size_t(chunk)) {
    const int64_t R = std::min<int64_t>(chunk, int64_t(active.size() - c0));
    Tensor xr = xc.rows(0, R), lr = logits.rows(0, R);
    for (int64_t r = 0; r < R; ++r) std::copy_n(px + active[c0 + size_t(r)] * C, C, xr.f32() + r * C);
    gemm(lr, xr, w, false, true);  // [R,V] = x_chunk @ w^T
    float* pl = lr.f32();
#pragma omp parallel for if (R * V >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < R; ++r) {
      float* row = pl + r * V;
      const int32_t target = tg[active[c0 + size_t(r)]];
      float mx = row[0];
#pragma omp simd reduction(max : mx)
      for (int64_t j = 1; j < V; ++j) mx = cpu::max_fast(mx, row[j]);
      const float target_logit = row[target];
      // Exponentials stored in place (each computed once), summed in double.
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; ++j) {
        row[j] = cpu::exp_fast(row[j] - mx);
        sum += row[j];
      }
      row_loss[c0 + size_t(r)] = double(mx) + std::log(sum) - double(target_logit);
      if (want_grad) {
        // d(loss)/d(logit_j) = softmax_j - [j == target]
        const float k = float(double(grad_scale) / sum);
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) row[j] *= k;
        row[target] -= grad_scale;
      }
    }
    if (dx.defined()) {
      Tensor dr = dxc.rows(0, R);
      gemm(dr, lr, w, false, false);  // [R,C] = dlogits @ w
      for (int64_t r = 0; r < R; ++r) std::copy_n(dr.f32() + r * C, C, dx.f32() + active[c0 + size_t(r)] * C);
    }
    if (dw.defined()) gemm(dw, lr, xr, true, false, 1.f, 1.f);  // [V,C] += dlogits^T @ x_chunk
  }
  double total = 0;  // summed in row order: deterministic
  for (double l : row_loss) total += l;
  return total;
}

}  // namespace qtrain
