// LayerNorm (torch.nn.LayerNorm: biased variance, eps inside the sqrt) and
// RMSNorm (HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then * w).
// Row statistics are summed in double, then stored as F32.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"

namespace qtrain {

namespace {

// Column sums over rows for the weight/bias gradients: threads own column
// blocks and walk the rows in order, so the result is deterministic.
// term(n, j) is the contribution of row n to column j.
template <class Term>
void accumulate_columns(float* grad, int64_t N, int64_t C, Term term) {
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t j0 = blk * kBlock, j1 = std::min(C, j0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += term(n, j);
    for (int64_t j = j0; j < j1; ++j) grad[j] += float(acc[j - j0]);
  }
}

}  // namespace

void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
  QT_DISPATCH_CUDA(x, layernorm_forward, out, mean, rstd, x, w, b, eps);
  cpu::check_f32(x, "layernorm x");
  auto m = cpu::as_matrix(x, "layernorm x");
  const int64_t N = m.rows, C = m.cols;
  cpu::check_f32(out, "layernorm out");
  check_shape(out, x.shape(), "layernorm out");
  cpu::check_f32(w, "layernorm w");
  check_shape(w, {C}, "layernorm w");
  cpu::check_f32(b, "layernorm b");
  check_shape(b, {C}, "layernorm b");
  cpu::check_f32(mean, "layernorm mean");
  cpu::check_numel(mean, N, "layernorm mean");
  cpu::check_f32(rstd, "layernorm rstd");
  cpu::check_numel(rstd, N, "layernorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pb = b.f32();
  float *po = out.f32(), *pm = mean.f32(), *pr = rstd.f32();
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = px + n * C;
    double s = 0;
    for (int64_t j = 0; j < C; ++j) s += xr[j];
    const double mu = s / double(C);
    double ss = 0;
    for (int64_t j = 0; j < C; ++j) ss += (xr[j] - mu) * (xr[j] - mu);
    const float mu_f = float(mu);
    const float r = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
    float* o = po + n * C;
    for (int64_t j = 0; j < C; ++j) o[j] = (xr[j] - mu_f) * r * pw[j] + pb[j];
    pm[n] = mu_f;
    pr[n] = r;
  }
}

void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                        Tensor rstd) {
  QT_DISPATCH_CUDA(x, layernorm_backward, dx, dw, db, dout, x, w, mean, rstd);
  cpu::check_f32(x, "layernorm x");
  auto m = cpu::as_matrix(x, "layernorm x");
  const int64_t N = m.rows, C = m.cols;
  cpu::check_f32(dx, "layernorm dx");
  check_shape(dx, x.shape(), "layernorm dx");
  cpu::check_f32(dout, "layernorm dout");
  check_shape(dout, x.shape(), "layernorm dout");
  cpu::check_f32(w, "layernorm w");
  check_shape(w, {C}, "layernorm w");
  cpu::check_f32(mean, "layernorm mean");
  cpu::check_numel(mean, N, "layernorm mean");
  cpu::check_f32(rstd, "layernorm rstd");
  cpu::check_numel(rstd, N, "layernorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pd = dout.f32(), *pm = mean.f32(), *pr = rstd.f32();
  // Parameter gradients first, so dx may share storage with dout.
  if (dw.defined()) {
    cpu::check_f32(dw, "layernorm dw");
    check_shape(dw, {C}, "layernorm dw");
    accumulate_columns(dw.f32(), N, C, [&](int64_t n, int64_t j) {
      return double(pd[n * C + j]) * ((px[n * C + j] - pm[n]) * pr[n]);
    });
  }
  if (db.defined()) {
    cpu::check_f32(db, "layernorm db");
    check_shape(db, {C}, "layernorm db");
    accumulate_columns(db.f32(), N, C, [&](int64_t n, int64_t j) { return double(pd[n * C + j]); });
  }
  float* pdx = dx.f32();
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float *xr = px + n * C, *dr = pd + n * C;
    const float mu = pm[n], r = pr[n];
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dout * w
    double sg = 0, sgx = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double g = double(dr[j]) * pw[j];
      sg += g;
      sgx += g * ((xr[j] - mu) * r);
    }
    const float mg = float(sg / double(C)), mgx = float(sgx / double(C));
    float* o = pdx + n * C;
    for (int64_t j = 0; j < C; ++j) {
      const float xhat = (xr[j] - mu) * r;
      o[j] = r * (dr[j] * pw[j] - mg - xhat * mgx);
    }
  }
}

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, float eps) {
  QT_DISPATCH_CUDA(x, rmsnorm_forward, out, rstd, x, w, eps);
  cpu::check_f32(x, "rmsnorm x");
  auto m = cpu::as_matrix(x, "rmsnorm x");
  const int64_t N = m.rows, C = m.cols;
  cpu::check_f32(out, "rmsnorm out");
  check_shape(out, x.shape(), "rmsnorm out");
  cpu::check_f32(w, "rmsnorm w");
  check_shape(w, {C}, "rmsnorm w");
  cpu::check_f32(rstd, "rmsnorm rstd");
  cpu::check_numel(rstd, N, "rmsnorm rstd");
  const float *px = x.f32(), *pw = w.f32();
  float *po = out.f32(), *pr = rstd.f32();
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = px + n * C;
    double ss = 0;
    for (int64_t j = 0; j < C; ++j) ss += double(xr[j]) * xr[j];
    const float var = float(ss / double(C));
    const float r = 1.f / std::sqrt(var + eps);  // torch.rsqrt(variance + eps) in fp32
    float* o = po + n * C;
    for (int64_t j = 0; j < C; ++j) o[j] = pw[j] * (xr[j] * r);
    pr[n] = r;
  }
}

void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) {
  QT_DISPATCH_CUDA(x, rmsnorm_backward, dx, dw, dout, x, w, rstd);
  cpu::check_f32(x, "rmsnorm x");
  auto m = cpu::as_matrix(x, "rmsnorm x");
  const int64_t N = m.rows, C = m.cols;
  cpu::check_f32(dx, "rmsnorm dx");
  check_shape(dx, x.shape(), "rmsnorm dx");
  cpu::check_f32(dout, "rmsnorm dout");
  check_shape(dout, x.shape(), "rmsnorm dout");
  cpu::check_f32(w, "rmsnorm w");
  check_shape(w, {C}, "rmsnorm w");
  cpu::check_f32(rstd, "rmsnorm rstd");
  cpu::check_numel(rstd, N, "rmsnorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pd = dout.f32(), *pr = rstd.f32();
  if (dw.defined()) {  // before dx, so dx may share storage with dout
    cpu::check_f32(dw, "rmsnorm dw");
    check_shape(dw, {C}, "rmsnorm dw");
    accumulate_columns(dw.f32(), N, C, [&](int64_t n, int64_t j) {
      return double(pd[n * C + j]) * (px[n * C + j] * pr[n]);
    });
  }
  float* pdx = dx.f32();
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float *xr = px + n * C, *dr = pd + n * C;
    const float r = pr[n];
    // y = x * r with r = (mean(x^2) + eps)^-1/2:  dx = r * g - x * r^3 * mean(g * x),  g = dout * w
    double sgx = 0;
    for (int64_t j = 0; j < C; ++j) sgx += double(dr[j]) * pw[j] * xr[j];
    const float k = float(sgx / double(C) * double(r) * r * r);
    float* o = pdx + n * C;
    for (int64_t j = 0; j < C; ++j) o[j] = r * (dr[j] * pw[j]) - xr[j] * k;
  }
}

}  // namespace qtrain
