// One warp per query row (b, t, h); lane l owns dims l, l+32, ... of the row.
//   forward : walks keys 0..t with an online softmax, writes out and lse.
//   backward: recomputes p_j = exp(s_j * scale - lse); dq is the warp's own
//             row (written directly); dk, dv receive contributions from many
//             query rows, so they accumulate with F32 atomics into a scratch
//             converted into the caller's dtype afterwards.
#include <cmath>

#include "kernels/cuda/attention_generic.cuh"

namespace qtrain::cuda {
namespace {

constexpr int kPer = kGenericMaxHeadDim / 32;  // dims per lane
constexpr int kWarpsPerBlock = 4;

struct RowIndex {
  int b, t, h, hk;
};

// Row r of the [B, T, Hq] query rows; hk is its kv head under GQA.
__device__ __forceinline__ RowIndex row_index(int64_t r, int T, int Hq, int Hkv) {
  RowIndex ri;
  ri.h = int(r % Hq);
  int64_t bt = r / Hq;
  ri.t = int(bt % T);
  ri.b = int(bt / T);
  ri.hk = ri.h / (Hq / Hkv);
  return ri;
}

__device__ __forceinline__ void load_row(float (&x)[kPer], const bf16* p, int D, int lane) {
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    int d = lane + 32 * i;
    x[i] = d < D ? __bfloat162float(p[d]) : 0.f;
  }
}

__device__ __forceinline__ float row_dot(const float (&a)[kPer], const bf16* p, int D, int lane) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    int d = lane + 32 * i;
    if (d < D) s += a[i] * __bfloat162float(p[d]);
  }
  return warp_sum(s);
}

__global__ void attention_forward_generic_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                                 int64_t rows, int T, int Hq, int Hkv, int D, float scale) {
  const int lane = threadIdx.x & 31;
  int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (r >= rows) return;
  RowIndex ri = row_index(r, T, Hq, Hkv);
  const int64_t qs = int64_t(Hq) * D, ks = int64_t(Hkv) * D;
  float qr[kPer], o[kPer];
  load_row(qr, q + (int64_t(ri.b) * T + ri.t) * qs + int64_t(ri.h) * D, D, lane);
#pragma unroll
  for (int i = 0; i < kPer; ++i) o[i] = 0.f;
  float m = -INFINITY, l = 0.f;
  const bf16* kb = k + int64_t(ri.b) * T * ks + int64_t(ri.hk) * D;
  const bf16* vb = v + int64_t(ri.b) * T * ks + int64_t(ri.hk) * D;
  for (int j = 0; j <= ri.t; ++j) {
    float s = row_dot(qr, kb + int64_t(j) * ks, D, lane) * scale;
    float m_new = fmaxf(m, s);
    float alpha = expf(m - m_new), p = expf(s - m_new);
    l = l * alpha + p;
    const bf16* vj = vb + int64_t(j) * ks;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      int d = lane + 32 * i;
      if (d < D) o[i] = o[i] * alpha + p * __bfloat162float(vj[d]);
    }
    m = m_new;
  }
  bf16* orow = out + (int64_t(ri.b) * T + ri.t) * qs + int64_t(ri.h) * D;
  float inv = 1.f / l;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    int d = lane + 32 * i;
    if (d < D) orow[d] = __float2bfloat16_rn(o[i] * inv);
  }
  if (lane == 0) lse[(int64_t(ri.b) * Hq + ri.h) * T + ri.t] = m + logf(l);
}

__global__ void attention_backward_generic_kernel(FloatPtr dq, float* dk_acc, float* dv_acc, const bf16* dout,
                                                  const bf16* q, const bf16* k, const bf16* v, const float* lse,
                                                  const float* Di, int64_t rows, int T, int Hq, int Hkv, int D,
                                                  float scale) {
  const int lane = threadIdx.x & 31;
  int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (r >= rows) return;
  RowIndex ri = row_index(r, T, Hq, Hkv);
  const int64_t qs = int64_t(Hq) * D, ks = int64_t(Hkv) * D;
  const int64_t qoff = (int64_t(ri.b) * T + ri.t) * qs + int64_t(ri.h) * D;
  float qr[kPer], dor[kPer], dqr[kPer];
  load_row(qr, q + qoff, D, lane);
  load_row(dor, dout + qoff, D, lane);
#pragma unroll
  for (int i = 0; i < kPer; ++i) dqr[i] = 0.f;
  const int64_t si = (int64_t(ri.b) * Hq + ri.h) * T + ri.t;
  const float row_lse = lse[si], row_D = Di[si];
  const int64_t kvb = int64_t(ri.b) * T * ks + int64_t(ri.hk) * D;
  for (int j = 0; j <= ri.t; ++j) {
    const int64_t kj = kvb + int64_t(j) * ks;
    float p = expf(row_dot(qr, k + kj, D, lane) * scale - row_lse);
    float dp = row_dot(dor, v + kj, D, lane);
    float ds = p * (dp - row_D) * scale;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      int d = lane + 32 * i;
      if (d < D) {
        dqr[i] += ds * __bfloat162float(k[kj + d]);
        atomicAdd(dk_acc + kj + d, ds * qr[i]);
        atomicAdd(dv_acc + kj + d, p * dor[i]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    int d = lane + 32 * i;
    if (d < D) dq.st(qoff + d, dqr[i]);
  }
}

int blocks_for_rows(int64_t rows) { return int((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

void attention_forward_generic(const AttnDims& d, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  QT_CHECK(d.D <= kGenericMaxHeadDim, "attention_forward_generic: head dim too large");
  int64_t rows = int64_t(d.B) * d.T * d.Hq;
  attention_forward_generic_kernel<<<blocks_for_rows(rows), 32 * kWarpsPerBlock, 0, stream()>>>(
      static_cast<bf16*>(out.raw()), lse.f32(), static_cast<const bf16*>(q.raw()), static_cast<const bf16*>(k.raw()),
      static_cast<const bf16*>(v.raw()), rows, d.T, d.Hq, d.Hkv, d.D, 1.f / std::sqrt(float(d.D)));
  CUDA_CHECK_LAUNCH("attention_forward_generic");
}

void attention_backward_generic(const AttnDims& d, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k,
                                Tensor v, const float* lse, const float* Di) {
  QT_CHECK(d.D <= kGenericMaxHeadDim, "attention_backward_generic: head dim too large");
  Context& ctx = Context::get();
  cudaStream_t s = ctx.stream();
  const int64_t nkv = k.numel();
  // One scratch holds dk and dv side by side (AttnDq is free: dq needs no atomics here).
  float* acc = static_cast<float*>(ctx.scratch(Scratch::AttnDq, size_t(nkv) * 2 * 4));
  CUDA_CHECK(cudaMemsetAsync(acc, 0, size_t(nkv) * 2 * 4, s));
  int64_t rows = int64_t(d.B) * d.T * d.Hq;
  attention_backward_generic_kernel<<<blocks_for_rows(rows), 32 * kWarpsPerBlock, 0, s>>>(
      fptr(dq, "attention dq"), acc, acc + nkv, static_cast<const bf16*>(dout.raw()), static_cast<const bf16*>(q.raw()),
      static_cast<const bf16*>(k.raw()), static_cast<const bf16*>(v.raw()), lse, Di, rows, d.T, d.Hq, d.Hkv, d.D,
      1.f / std::sqrt(float(d.D)));
  CUDA_CHECK_LAUNCH("attention_backward_generic");
  convert_n(fptr(dk, "attention dk"), FloatPtr{acc, DType::F32}, nkv);
  convert_n(fptr(dv, "attention dv"), FloatPtr{acc + nkv, DType::F32}, nkv);
}

}  // namespace qtrain::cuda
