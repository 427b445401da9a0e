// Causal attention with grouped-query heads, in blocks of kBlock query (or
// key) rows: each block's scores are one small gemm into a per-thread
// [kBlock, T] scratch, so the T x T matrix never exists. Backward recomputes
// the probabilities from the saved log-sum-exp.
//
// Shapes: q, out, dout [B,T,Hq,D]; k, v [B,T,Hkv,D]. The rows of one head are
// strided in memory (Hq*D apart), which BLAS takes as the leading dimension.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "kernels/cpu/openblas.h"
#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {

constexpr int64_t kBlock = 64;

struct AttnDims {
  int64_t B, T, Hq, Hkv, D, group;
  float scale;
  int64_t qrow(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hq + h) * D; }
  int64_t kvrow(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hkv + h) * D; }
  int64_t lse_at(int64_t b, int64_t h, int64_t t) const { return (b * Hq + h) * T + t; }
  int64_t nblocks() const { return (T + kBlock - 1) / kBlock; }
  int ldq() const { return int(Hq * D); }
  int ldkv() const { return int(Hkv * D); }
};

// What both backends need, checked before the dispatch: q [B,T,Hq,D], k and
// v [B,T,Hkv,D] with Hkv dividing Hq, lse B*Hq*T values, all on q's device.
// The CUDA twin adds its dtypes (BF16, F32 lse), alignment and head-dim range.
void check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse, const char* what) {
  QT_CHECK(q.defined() && q.ndim() == 4, std::string(what) + " q: expected [B,T,H,D]");
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), D = q.size(3);
  check_on(k, q, what);
  QT_CHECK(k.ndim() == 4 && k.size(0) == B && k.size(1) == T && k.size(3) == D && k.size(2) > 0 && Hq % k.size(2) == 0,
           std::string(what) + ": k" + shape_str(k.shape()) + " for q" + shape_str(q.shape()) +
               " (expected [B,T,Hkv,D] with Hkv dividing Hq)");
  check_like(v, k, (std::string(what) + " v").c_str());
  check_len(lse, q, B * Hq * T, (std::string(what) + " lse").c_str());
}

AttnDims dims_of(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse) {
  cpu::check_f32(q, "attention q");
  cpu::check_f32(k, "attention k");
  cpu::check_f32(v, "attention v");
  cpu::check_f32(lse, "attention lse");
  AttnDims d{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), 1, 0.f};
  d.group = d.Hq / d.Hkv;
  d.scale = 1.f / std::sqrt(float(d.D));
  return d;
}

// Row-major C[M,N] = alpha * A[M,K] @ op(B) + beta * C with leading dimensions.
inline void blas(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc) {
  cpu::openblas_sgemm(false, trans_b, int(M), int(N), int(K), alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

namespace {
AttentionImpl g_attention_impl = AttentionImpl::Auto;
const char* g_last_attention_impl = "none";
// Off (1) unless QT_ATTN_CLUSTER sets it until a GPU run has confirmed the clustered kernel
// (CudaAttentionCached.ClusterSplitMatchesCpu) and measured it against one block a row.
int g_attention_cluster = [] {
  const char* e = std::getenv("QT_ATTN_CLUSTER");
  return e && *e ? std::atoi(e) : 1;
}();
}  // namespace

void set_attention_cluster(int max_blocks) { g_attention_cluster = max_blocks; }
int attention_cluster() { return g_attention_cluster; }
namespace {
AttentionSplit g_last_attention_split;
}  // namespace
AttentionSplit last_attention_split() { return g_last_attention_split; }
void note_attention_split(AttentionSplit split) { g_last_attention_split = split; }

void set_attention_impl(AttentionImpl impl) { g_attention_impl = impl; }
AttentionImpl attention_impl() { return g_attention_impl; }
const char* last_attention_impl() { return g_last_attention_impl; }
void note_attention_impl(const char* name) { g_last_attention_impl = name; }

AttentionImpl parse_attention_impl(const std::string& s, const std::string& what) {
  if (s == "auto") return AttentionImpl::Auto;
  if (s == "cudnn") return AttentionImpl::Cudnn;
  if (s == "own") return AttentionImpl::Own;
  throw Error(what + ": unknown attention implementation '" + s + "' (auto | cudnn | own)", ErrorKind::BadInput);
}

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  check_qkv(q, k, v, lse, "attention_forward");
  check_like(out, q, "attention_forward out");
  QT_DISPATCH_CUDA(q, attention_forward, out, lse, q, k, v);
  const AttnDims d = dims_of(q, k, v, lse);
  cpu::check_f32(out, "attention out");
  const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32();
  float *po = out.f32(), *pl = lse.f32();
#pragma omp parallel if (d.B * d.Hq * d.T * d.T * d.D >= cpu::kParallelMinWork)
  {
    std::vector<float> s(static_cast<size_t>(kBlock * d.T));  // scores, then probabilities
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.Hq; ++h)
        for (int64_t qb = 0; qb < d.nblocks(); ++qb) {
          const int64_t t0 = qb * kBlock, tq = std::min(kBlock, d.T - t0), nk = t0 + tq, hk = h / d.group;
          // S[tq, nk] = scale * Q[t0:t0+tq] @ K[0:nk]^T   (keys past the block are all masked)
          blas(true, tq, nk, d.D, d.scale, pq + d.qrow(b, t0, h), d.ldq(), pk + d.kvrow(b, 0, hk), d.ldkv(), 0.f,
               s.data(), int(nk));
          for (int64_t r = 0; r < tq; ++r) {
            const int64_t t = t0 + r;  // causal: keys 0..t
            float* row = s.data() + r * nk;
            float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j <= t; ++j) mx = cpu::max_fast(mx, row[j]);
            float sum = 0.f;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j <= t; ++j) sum += (row[j] = cpu::exp_fast(row[j] - mx));
            const float inv = 1.f / sum;
#pragma omp simd
            for (int64_t j = 0; j <= t; ++j) row[j] *= inv;
            std::fill(row + t + 1, row + nk, 0.f);
            pl[d.lse_at(b, h, t)] = mx + std::log(sum);
          }
          // O[t0:t0+tq] = P @ V[0:nk]
          blas(false, tq, d.D, nk, 1.f, s.data(), int(nk), pv + d.kvrow(b, 0, hk), d.ldkv(), 0.f,
               po + d.qrow(b, t0, h), d.ldq());
        }
  }
}

// With P = softmax(S), S = scale * q k^T (causal), out = P v:
//   dP = dout v^T,  dS = P * (dP - delta),  delta_t = sum_j P_tj dP_tj = dout_t . out_t,
//   dq = scale dS k,  dk = scale dS^T q,  dv = P^T dout.
// dq is computed per block of query rows, dk/dv per block of key rows (summing
// over the query heads of its group), so every output has one owner: no atomics,
// deterministic.
void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse) {
  check_qkv(q, k, v, lse, "attention_backward");
  check_like(dq, q, "attention_backward dq");
  check_like(dk, k, "attention_backward dk");
  check_like(dv, v, "attention_backward dv");
  check_like(dout, q, "attention_backward dout");
  check_like(out, q, "attention_backward out");
  QT_DISPATCH_CUDA(q, attention_backward, dq, dk, dv, dout, q, k, v, out, lse);
  const AttnDims d = dims_of(q, k, v, lse);
  cpu::check_f32(dq, "attention dq");
  cpu::check_f32(dk, "attention dk");
  cpu::check_f32(dv, "attention dv");
  cpu::check_f32(dout, "attention dout");
  cpu::check_f32(out, "attention out");
  const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32(), *pd = dout.f32(), *po = out.f32(), *pl = lse.f32();
  float *pdq = dq.f32(), *pdk = dk.f32(), *pdv = dv.f32();
  const bool parallel = d.B * d.Hq * d.T * d.T * d.D >= cpu::kParallelMinWork;

  std::vector<float> delta(static_cast<size_t>(d.B * d.Hq * d.T));  // [B,Hq,T]
#pragma omp parallel for collapse(3) if (parallel)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.Hq; ++h)
      for (int64_t t = 0; t < d.T; ++t)
        delta[size_t(d.lse_at(b, h, t))] = cpu::dot(pd + d.qrow(b, t, h), po + d.qrow(b, t, h), d.D);

#pragma omp parallel if (parallel)
  {
    std::vector<float> s(static_cast<size_t>(kBlock * d.T)), ds(static_cast<size_t>(kBlock * d.T));
    // dq, per block of query rows [t0, t0+tq): keys 0..nk-1.
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.Hq; ++h)
        for (int64_t qb = 0; qb < d.nblocks(); ++qb) {
          const int64_t t0 = qb * kBlock, tq = std::min(kBlock, d.T - t0), nk = t0 + tq, hk = h / d.group;
          const float* qb_ptr = pq + d.qrow(b, t0, h);
          blas(true, tq, nk, d.D, d.scale, qb_ptr, d.ldq(), pk + d.kvrow(b, 0, hk), d.ldkv(), 0.f, s.data(), int(nk));
          blas(true, tq, nk, d.D, 1.f, pd + d.qrow(b, t0, h), d.ldq(), pv + d.kvrow(b, 0, hk), d.ldkv(), 0.f,
               ds.data(), int(nk));
          for (int64_t r = 0; r < tq; ++r) {  // row t = t0 + r sees keys 0..t: one lse, one delta
            const int64_t t = t0 + r, at = d.lse_at(b, h, t);
            float *sr = s.data() + r * nk, *dr = ds.data() + r * nk;
            const float l = pl[at], dl = delta[size_t(at)];
#pragma omp simd
            for (int64_t j = 0; j <= t; ++j) dr[j] = cpu::exp_fast(sr[j] - l) * (dr[j] - dl);
            std::fill(dr + t + 1, dr + nk, 0.f);
          }
          blas(false, tq, d.D, nk, d.scale, ds.data(), int(nk), pk + d.kvrow(b, 0, hk), d.ldkv(), 0.f,
               pdq + d.qrow(b, t0, h), d.ldq());
        }

    // dk, dv, per block of key rows [j0, j0+tk) of kv head hk: queries j0..T-1 of every head in the group.
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t hk = 0; hk < d.Hkv; ++hk)
        for (int64_t kb = 0; kb < d.nblocks(); ++kb) {
          const int64_t j0 = kb * kBlock, tk = std::min(kBlock, d.T - j0), nq = d.T - j0;
          float* dk_blk = pdk + d.kvrow(b, j0, hk);
          float* dv_blk = pdv + d.kvrow(b, j0, hk);
          for (int64_t jj = 0; jj < tk; ++jj) {
            std::fill_n(dk_blk + jj * d.ldkv(), d.D, 0.f);
            std::fill_n(dv_blk + jj * d.ldkv(), d.D, 0.f);
          }
          for (int64_t h = hk * d.group; h < (hk + 1) * d.group; ++h) {
            const float* q_rows = pq + d.qrow(b, j0, h);
            const float* dout_rows = pd + d.qrow(b, j0, h);
            // Transposed blocks: S^T[tk, nq] = scale * K_blk @ Q[j0:T]^T,  dP^T = V_blk @ dout[j0:T]^T
            blas(true, tk, nq, d.D, d.scale, pk + d.kvrow(b, j0, hk), d.ldkv(), q_rows, d.ldq(), 0.f, s.data(),
                 int(nq));
            blas(true, tk, nq, d.D, 1.f, pv + d.kvrow(b, j0, hk), d.ldkv(), dout_rows, d.ldq(), 0.f, ds.data(),
                 int(nq));
            for (int64_t jj = 0; jj < tk; ++jj) {  // key j0 + jj is seen by queries j0 + jj .. T-1
              float *sr = s.data() + jj * nq, *dr = ds.data() + jj * nq;
              std::fill_n(sr, jj, 0.f);
              std::fill_n(dr, jj, 0.f);
              // In place: S^T -> P^T = exp(S - lse), dP^T -> dS^T = P (dP - delta); lse and
              // delta run along the queries, i.e. along this row.
              const float* l = pl + d.lse_at(b, h, j0);
              const float* dl = delta.data() + d.lse_at(b, h, j0);
#pragma omp simd
              for (int64_t tt = jj; tt < nq; ++tt) {
                sr[tt] = cpu::exp_fast(sr[tt] - l[tt]);
                dr[tt] = sr[tt] * (dr[tt] - dl[tt]);
              }
            }
            blas(false, tk, d.D, nq, 1.f, s.data(), int(nq), dout_rows, d.ldq(), 1.f, dv_blk, d.ldkv());
            blas(false, tk, d.D, nq, d.scale, ds.data(), int(nq), q_rows, d.ldq(), 1.f, dk_blk, d.ldkv());
          }
        }
  }
}

}  // namespace qtrain
