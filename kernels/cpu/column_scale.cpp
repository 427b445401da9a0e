// Column scales (IA3, DoRA): the fp32 references. Shapes are checked here,
// before the dispatch, so both backends refuse the same calls.
#include "kernels/column_scale.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {
int64_t cols_of(const Tensor& x, const Tensor& v, const char* what) {
  QT_CHECK(x.defined() && v.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(x.ndim() >= 1 && x.size(-1) == v.numel(),
           std::string(what) + ": x" + shape_str(x.shape()) + " and vector" + shape_str(v.shape()) + " differ in columns");
  QT_CHECK(v.dtype() == DType::F32, std::string(what) + ": the vector must be F32");
  check_on(v, x, what);
  return v.numel();
}
}  // namespace

void mul_cols(Tensor out, Tensor x, Tensor v, float offset, Tensor keep) {
  const int64_t W = cols_of(x, v, "mul_cols");
  QT_CHECK(out.defined() && out.numel() == x.numel(), "mul_cols: out and x differ in size");
  QT_CHECK(!keep.defined() || (keep.numel() == x.numel() && keep.dtype() == x.dtype()),
           "mul_cols: keep must be x's size and dtype");
  if (keep.defined()) check_on(keep, x, "mul_cols keep");
  QT_DISPATCH_CUDA(x, mul_cols, out, x, v, offset, keep);
  cpu::check_f32(x, "mul_cols x");
  cpu::check_f32(out, "mul_cols out");
  if (keep.defined()) keep.copy_from(x);
  const int64_t N = x.numel() / W;
  const float* px = x.f32();
  const float* pv = v.f32();
  float* po = out.f32();
#pragma omp parallel for if (N * W >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) po[n * W + j] = px[n * W + j] * (pv[j] + offset);
}

void col_dot(Tensor g, Tensor a, Tensor b, Tensor div) {
  const int64_t W = cols_of(a, g, "col_dot");
  QT_CHECK(b.defined() && b.numel() == a.numel(), "col_dot: a and b differ in size");
  QT_CHECK(!div.defined() || (div.numel() == W && div.dtype() == DType::F32), "col_dot: div must be F32 [W]");
  QT_DISPATCH_CUDA(a, col_dot, g, a, b, div);
  cpu::check_f32(a, "col_dot a");
  cpu::check_f32(b, "col_dot b");
  const int64_t N = a.numel() / W;
  const float *pa = a.f32(), *pb = b.f32();
  float* pg = g.f32();
#pragma omp parallel for if (N * W >= cpu::kParallelMinWork)
  for (int64_t j = 0; j < W; ++j) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += double(pa[n * W + j]) * pb[n * W + j];
    pg[j] += float(div.defined() ? s / div.f32()[j] : s);
  }
}

void dora_scale(Tensor scale, Tensor norm, Tensor m, Tensor wn2, Tensor B, Tensor P, Tensor Q, float s) {
  QT_CHECK(B.defined() && B.ndim() == 2, "dora_scale: B must be [out, r]");
  const int64_t out = B.size(0), r = B.size(1);
  for (const Tensor* t : {&scale, &norm, &m, &wn2})
    QT_CHECK(t->defined() && t->numel() == out && t->dtype() == DType::F32, "dora_scale: vectors must be F32 [out]");
  QT_CHECK(P.defined() && P.numel() == r * out && Q.defined() && Q.numel() == r * out,
           "dora_scale: P and Q must be [r, out]");
  QT_DISPATCH_CUDA(B, dora_scale, scale, norm, m, wn2, B, P, Q, s);
  for (const Tensor* t : {&scale, &norm, &m, &wn2, &B, &P, &Q}) cpu::check_f32(*t, "dora_scale");
  const float *pb = B.f32(), *pp = P.f32(), *pq = Q.f32();
  for (int64_t i = 0; i < out; ++i) {
    double cross = 0, quad = 0;
    for (int64_t k = 0; k < r; ++k) {
      cross += double(pb[i * r + k]) * pp[k * out + i];
      quad += double(pb[i * r + k]) * pq[k * out + i];
    }
    // Rounding can take a (near) zero norm slightly below zero.
    const float n = float(std::sqrt(std::max(0.0, double(wn2.f32()[i]) + 2.0 * s * cross + double(s) * s * quad)));
    norm.f32()[i] = n;
    scale.f32()[i] = m.f32()[i] / n;
  }
}

}  // namespace qtrain
