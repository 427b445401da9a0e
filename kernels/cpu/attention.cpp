// Causal attention with grouped-query heads, one query row at a time. Only a
// [T] scratch row of scores exists per thread; backward recomputes the
// probabilities from the saved log-sum-exp instead of keeping T x T.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"

namespace qtrain {

namespace {

struct AttnDims {
  int64_t B, T, Hq, Hkv, D, group;
  float scale;
  // Row starts of q/out/dout ([B,T,Hq,D]) and k/v ([B,T,Hkv,D]).
  int64_t qrow(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hq + h) * D; }
  int64_t kvrow(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hkv + h) * D; }
  int64_t lse_at(int64_t b, int64_t h, int64_t t) const { return (b * Hq + h) * T + t; }
};

AttnDims check_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse) {
  cpu::check_f32(q, "attention q");
  cpu::check_f32(k, "attention k");
  cpu::check_f32(v, "attention v");
  cpu::check_f32(lse, "attention lse");
  QT_CHECK(q.ndim() == 4 && k.ndim() == 4, "attention: q, k, v must be [B,T,H,D]");
  AttnDims d{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), 1, 0.f};
  QT_CHECK(d.Hkv > 0 && d.Hq % d.Hkv == 0, "attention: Hq % Hkv != 0");
  check_shape(k, {d.B, d.T, d.Hkv, d.D}, "attention k");
  check_shape(v, {d.B, d.T, d.Hkv, d.D}, "attention v");
  check_shape(lse, {d.B, d.Hq, d.T}, "attention lse");
  d.group = d.Hq / d.Hkv;
  d.scale = 1.f / std::sqrt(float(d.D));
  return d;
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  QT_DISPATCH_CUDA(q, attention_forward, out, lse, q, k, v);
  const AttnDims d = check_dims(q, k, v, lse);
  cpu::check_f32(out, "attention out");
  check_shape(out, q.shape(), "attention out");
  const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32();
  float *po = out.f32(), *pl = lse.f32();
#pragma omp parallel if (d.B * d.Hq * d.T * d.T * d.D >= cpu::kParallelMinWork)
  {
    std::vector<float> p(size_t(d.T));
#pragma omp for collapse(3) schedule(dynamic, 8)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.Hq; ++h)
        for (int64_t t = 0; t < d.T; ++t) {
          const int64_t hk = h / d.group;
          const float* qr = pq + d.qrow(b, t, h);
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j <= t; ++j) {  // causal: keys 0..t
            p[size_t(j)] = cpu::dot(qr, pk + d.kvrow(b, j, hk), d.D) * d.scale;
            mx = std::max(mx, p[size_t(j)]);
          }
          float sum = 0.f;
          for (int64_t j = 0; j <= t; ++j) {
            p[size_t(j)] = std::exp(p[size_t(j)] - mx);
            sum += p[size_t(j)];
          }
          float* o = po + d.qrow(b, t, h);
          std::fill(o, o + d.D, 0.f);
          const float inv = 1.f / sum;
          for (int64_t j = 0; j <= t; ++j) cpu::axpy_row(o, p[size_t(j)] * inv, pv + d.kvrow(b, j, hk), d.D);
          pl[d.lse_at(b, h, t)] = mx + std::log(sum);
        }
  }
}

// With P = softmax(S), S = scale * q k^T (causal), out = P v:
//   dv_j = sum_t P_tj dout_t,   dP_tj = dout_t . v_j,   dS_tj = P_tj (dP_tj - delta_t),
//   delta_t = sum_j P_tj dP_tj = dout_t . out_t,   dq_t = scale sum_j dS_tj k_j,   dk_j = scale sum_t dS_tj q_t.
// dq is computed per query row, dk/dv per key row (summing over the query heads
// of its group), so every output has one owner: no atomics, deterministic.
void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse) {
  QT_DISPATCH_CUDA(q, attention_backward, dq, dk, dv, dout, q, k, v, out, lse);
  const AttnDims d = check_dims(q, k, v, lse);
  cpu::check_f32(dq, "attention dq");
  cpu::check_f32(dk, "attention dk");
  cpu::check_f32(dv, "attention dv");
  cpu::check_f32(dout, "attention dout");
  cpu::check_f32(out, "attention out");
  check_shape(dq, q.shape(), "attention dq");
  check_shape(dk, k.shape(), "attention dk");
  check_shape(dv, v.shape(), "attention dv");
  check_shape(dout, q.shape(), "attention dout");
  check_shape(out, q.shape(), "attention out");
  const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32(), *pd = dout.f32(), *po = out.f32(), *pl = lse.f32();
  float *pdq = dq.f32(), *pdk = dk.f32(), *pdv = dv.f32();

  std::vector<float> delta(size_t(d.B * d.Hq * d.T));  // [B,Hq,T]
#pragma omp parallel for collapse(3) if (d.B * d.Hq * d.T * d.D >= cpu::kParallelMinWork)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.Hq; ++h)
      for (int64_t t = 0; t < d.T; ++t)
        delta[size_t(d.lse_at(b, h, t))] = cpu::dot(pd + d.qrow(b, t, h), po + d.qrow(b, t, h), d.D);

  // dS for query row t, key row j, query head h (kv head h / group).
  auto dscore = [&](int64_t b, int64_t h, int64_t t, int64_t j, float* p_out) {
    const int64_t hk = h / d.group;
    const float s = cpu::dot(pq + d.qrow(b, t, h), pk + d.kvrow(b, j, hk), d.D) * d.scale;
    const float p = std::exp(s - pl[d.lse_at(b, h, t)]);
    const float dp = cpu::dot(pd + d.qrow(b, t, h), pv + d.kvrow(b, j, hk), d.D);
    *p_out = p;
    return p * (dp - delta[size_t(d.lse_at(b, h, t))]);
  };

#pragma omp parallel for collapse(3) schedule(dynamic, 8) if (d.B * d.Hq * d.T * d.T * d.D >= cpu::kParallelMinWork)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.Hq; ++h)
      for (int64_t t = 0; t < d.T; ++t) {
        const int64_t hk = h / d.group;
        float* g = pdq + d.qrow(b, t, h);
        std::fill(g, g + d.D, 0.f);
        float p;
        for (int64_t j = 0; j <= t; ++j) cpu::axpy_row(g, d.scale * dscore(b, h, t, j, &p), pk + d.kvrow(b, j, hk), d.D);
      }

#pragma omp parallel for collapse(3) schedule(dynamic, 8) if (d.B * d.Hq * d.T * d.T * d.D >= cpu::kParallelMinWork)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t hk = 0; hk < d.Hkv; ++hk)
      for (int64_t j = 0; j < d.T; ++j) {
        float* gk = pdk + d.kvrow(b, j, hk);
        float* gv = pdv + d.kvrow(b, j, hk);
        std::fill(gk, gk + d.D, 0.f);
        std::fill(gv, gv + d.D, 0.f);
        for (int64_t h = hk * d.group; h < (hk + 1) * d.group; ++h)
          for (int64_t t = j; t < d.T; ++t) {  // causal: queries j..T-1 see key j
            float p;
            const float ds = dscore(b, h, t, j, &p);
            cpu::axpy_row(gk, d.scale * ds, pq + d.qrow(b, t, h), d.D);
            cpu::axpy_row(gv, p, pd + d.qrow(b, t, h), d.D);
          }
      }
}

}  // namespace qtrain
