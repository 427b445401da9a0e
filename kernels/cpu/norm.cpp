// LayerNorm (torch.nn.LayerNorm: biased variance, eps inside the sqrt) and
// RMSNorm (HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then * w).
// Row statistics are summed in double, then stored as F32.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/op_checks.h"

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

// The checks both backends need, before the dispatch: x has non-empty rows
// of C values, the weights (and their gradients, when asked for) C values,
// the row statistics N. The forward pass may leave the statistics out (the
// GPU path of inference does). The twins add only their dtypes.
RowsCols check_norm(const Tensor& x, const Tensor& w, const char* x_what, const char* w_what) {
  const RowsCols m = check_rows_cols(x, x_what, true);
  check_len(w, x, m.cols, w_what);
  return m;
}

void check_optional_len(const Tensor& t, const Tensor& x, int64_t n, const char* what) {
  if (t.defined()) check_len(t, x, n, what);
}

// The forward ops' shared checks, each message led by `op` ("layernorm", "add_layernorm", ...);
// r, the fused residual, is checked when defined.
RowsCols check_layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                                 const Tensor& r, const Tensor& w, const Tensor& b, const std::string& op) {
  const RowsCols m = check_norm(x, w, (op + " x").c_str(), (op + " w").c_str());
  check_like(out, x, (op + " out").c_str());
  if (r.defined()) check_like(r, x, (op + " r").c_str());
  check_len(b, x, m.cols, (op + " b").c_str());
  check_optional_len(mean, x, m.rows, (op + " mean").c_str());
  check_optional_len(rstd, x, m.rows, (op + " rstd").c_str());
  return m;
}

RowsCols check_rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& r,
                               const Tensor& w, const std::string& op) {
  const RowsCols m = check_norm(x, w, (op + " x").c_str(), (op + " w").c_str());
  check_like(out, x, (op + " out").c_str());
  if (r.defined()) check_like(r, x, (op + " r").c_str());
  check_optional_len(rstd, x, m.rows, (op + " rstd").c_str());
  return m;
}

}  // namespace

void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
  const RowsCols m = check_layernorm_forward(out, mean, rstd, x, Tensor(), w, b, "layernorm");
  const int64_t N = m.rows, C = m.cols;
  QT_DISPATCH_CUDA(x, layernorm_forward, out, mean, rstd, x, w, b, eps);
  cpu::check_f32(x, "layernorm x");
  cpu::check_f32(out, "layernorm out");
  cpu::check_f32(w, "layernorm w");
  cpu::check_f32(b, "layernorm b");
  if (mean.defined()) cpu::check_f32(mean, "layernorm mean");
  if (rstd.defined()) cpu::check_f32(rstd, "layernorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pb = b.f32();
  float *po = out.f32(), *pm = mean.defined() ? mean.f32() : nullptr, *pr = rstd.defined() ? rstd.f32() : nullptr;
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
    if (pm) pm[n] = mu_f;
    if (pr) pr[n] = r;
  }
}

void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                        Tensor rstd, bool accumulate_dx) {
  const RowsCols m = check_norm(x, w, "layernorm x", "layernorm w");
  const int64_t N = m.rows, C = m.cols;
  check_like(dx, x, "layernorm dx");
  check_like(dout, x, "layernorm dout");
  check_len(mean, x, N, "layernorm mean");
  check_len(rstd, x, N, "layernorm rstd");
  check_optional_len(dw, x, C, "layernorm dw");
  check_optional_len(db, x, C, "layernorm db");
  QT_CHECK(!accumulate_dx || dx.raw() != dout.raw(), "layernorm_backward: accumulating into dx that is dout");
  QT_DISPATCH_CUDA(x, layernorm_backward, dx, dw, db, dout, x, w, mean, rstd, accumulate_dx);
  cpu::check_f32(x, "layernorm x");
  cpu::check_f32(dx, "layernorm dx");
  cpu::check_f32(dout, "layernorm dout");
  cpu::check_f32(w, "layernorm w");
  cpu::check_f32(mean, "layernorm mean");
  cpu::check_f32(rstd, "layernorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pd = dout.f32(), *pm = mean.f32(), *pr = rstd.f32();
  // Parameter gradients first, so dx may share storage with dout.
  if (dw.defined()) {
    cpu::check_f32(dw, "layernorm dw");
    accumulate_columns(dw.f32(), N, C, [&](int64_t n, int64_t j) {
      return double(pd[n * C + j]) * ((px[n * C + j] - pm[n]) * pr[n]);
    });
  }
  if (db.defined()) {
    cpu::check_f32(db, "layernorm db");
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
      const float v = r * (dr[j] * pw[j] - mg - xhat * mgx);
      o[j] = accumulate_dx ? o[j] + v : v;
    }
  }
}

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, float eps) {
  const RowsCols m = check_rmsnorm_forward(out, rstd, x, Tensor(), w, "rmsnorm");
  const int64_t N = m.rows, C = m.cols;
  QT_DISPATCH_CUDA(x, rmsnorm_forward, out, rstd, x, w, eps);
  cpu::check_f32(x, "rmsnorm x");
  cpu::check_f32(out, "rmsnorm out");
  cpu::check_f32(w, "rmsnorm w");
  if (rstd.defined()) cpu::check_f32(rstd, "rmsnorm rstd");
  const float *px = x.f32(), *pw = w.f32();
  float *po = out.f32(), *pr = rstd.defined() ? rstd.f32() : nullptr;
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = px + n * C;
    double ss = 0;
    for (int64_t j = 0; j < C; ++j) ss += double(xr[j]) * xr[j];
    const float var = float(ss / double(C));
    const float r = 1.f / std::sqrt(var + eps);  // torch.rsqrt(variance + eps) in fp32
    float* o = po + n * C;
    for (int64_t j = 0; j < C; ++j) o[j] = pw[j] * (xr[j] * r);
    if (pr) pr[n] = r;
  }
}

void add_layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor r, Tensor w, Tensor b, float eps) {
  QT_CHECK(r.defined(), "add_layernorm r: undefined tensor");
  check_layernorm_forward(out, mean, rstd, x, r, w, b, "add_layernorm");
  QT_DISPATCH_CUDA(x, add_layernorm_forward, out, mean, rstd, x, r, w, b, eps);
  add_inplace(x, r);
  layernorm_forward(out, mean, rstd, x, w, b, eps);
}

void add_rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps) {
  QT_CHECK(r.defined(), "add_rmsnorm r: undefined tensor");
  check_rmsnorm_forward(out, rstd, x, r, w, "add_rmsnorm");
  QT_DISPATCH_CUDA(x, add_rmsnorm_forward, out, rstd, x, r, w, eps);
  add_inplace(x, r);
  rmsnorm_forward(out, rstd, x, w, eps);
}

void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd, bool accumulate_dx) {
  const RowsCols m = check_norm(x, w, "rmsnorm x", "rmsnorm w");
  const int64_t N = m.rows, C = m.cols;
  check_like(dx, x, "rmsnorm dx");
  check_like(dout, x, "rmsnorm dout");
  check_len(rstd, x, N, "rmsnorm rstd");
  check_optional_len(dw, x, C, "rmsnorm dw");
  QT_CHECK(!accumulate_dx || dx.raw() != dout.raw(), "rmsnorm_backward: accumulating into dx that is dout");
  QT_DISPATCH_CUDA(x, rmsnorm_backward, dx, dw, dout, x, w, rstd, accumulate_dx);
  cpu::check_f32(x, "rmsnorm x");
  cpu::check_f32(dx, "rmsnorm dx");
  cpu::check_f32(dout, "rmsnorm dout");
  cpu::check_f32(w, "rmsnorm w");
  cpu::check_f32(rstd, "rmsnorm rstd");
  const float *px = x.f32(), *pw = w.f32(), *pd = dout.f32(), *pr = rstd.f32();
  if (dw.defined()) {  // before dx, so dx may share storage with dout
    cpu::check_f32(dw, "rmsnorm dw");
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
    for (int64_t j = 0; j < C; ++j) {
      const float v = r * (dr[j] * pw[j]) - xr[j] * k;
      o[j] = accumulate_dx ? o[j] + v : v;
    }
  }
}

}  // namespace qtrain
