// Decode attention: a few new queries against the key/value cache. One block
// per (query row, head, batch row); each of its warps runs an online softmax
// over every kWarps-th key (lanes split the head dimension, a shuffle sums the
// dot product), then the warps' partial results are merged through shared
// memory. A decode step has one query row per head and reads the whole cache
// once, so this is memory-bound on the cache, like the weights' GEMV.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/attention.h"

namespace qtrain::cuda {
namespace {

// 16: at batch 1 there are only Hq blocks (9 for SmolLM2, 32 for LLaMA-7B), so
// the warps of a block are the only parallelism over keys; with 4 a step's
// attention took 36-50 us per layer on the H200 (CUPTI, bench_decode --profile).
constexpr int kWarps = 16;
constexpr int kMaxPerLane = 8;  // head dim <= 256

__global__ void attention_cached_kernel(FloatPtr out, FloatPtr q, FloatPtr kc, FloatPtr vc, int Tq, int Hq, int Hkv,
                                        int D, int Tc, int pos0, const int32_t* pos_dev, float scale) {
  if (pos_dev) pos0 = *pos_dev;  // a replayed decode step
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int hk = h / (Hq / Hkv), nk = pos0 + t + 1;
  const int64_t qrow = ((int64_t(b) * Tq + t) * Hq + h) * D;
  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < D ? q.ld(qrow + d) * scale : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = warp; j < nk; j += kWarps) {
    const int64_t krow = ((int64_t(b) * Tc + j) * Hkv + hk) * D;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < D) s += qv[i] * kc.ld(krow + d);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float mn = fmaxf(m, s), corr = __expf(m - mn), p = __expf(s - mn);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < D) acc[i] = acc[i] * corr + p * vc.ld(krow + d);
    }
    m = mn;
  }
  __shared__ float sm[kWarps], sl[kWarps];
  __shared__ float sacc[kWarps][32 * kMaxPerLane];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i)
    if (lane + 32 * i < D) sacc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  float L = 0.f;
  for (int w = 0; w < kWarps; ++w)
    if (sm[w] > -INFINITY) L += sl[w] * __expf(sm[w] - M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (sm[w] > -INFINITY) o += sacc[w][d] * __expf(sm[w] - M);
    out.st(qrow + d, o / L);
  }
}

// One thread per 16 bytes of the new rows: src [B,T,row] into cache [B,Tc,row]
// at position pos0 (or *pos_dev) of every batch row.
__global__ void kv_cache_write_kernel(int4* cache, const int4* src, int64_t B, int64_t T, int64_t Tc, int64_t row16,
                                      int pos0, const int32_t* pos_dev) {
  if (pos_dev) pos0 = *pos_dev;
  const int64_t per_b = T * row16, n = B * per_b;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / per_b, r = i - b * per_b;
    cache[(b * Tc + pos0) * row16 + r] = src[i];
  }
}

}  // namespace

// Shapes and positions were checked by the public op (kernels/cpu/attention_cached.cpp).
void kv_cache_write(Tensor cache, Tensor src, SeqPos pos) {
  const int64_t B = src.size(0), T = src.size(1), Tc = cache.size(1), row = src.size(2) * src.size(3);
  const int64_t row_bytes = row * int64_t(dtype_size(src.dtype()));
  QT_CHECK(row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(src.raw()) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(cache.raw()) % 16 == 0,
           "kv_cache_write: rows must be 16-byte multiples and aligned");
  const int64_t row16 = row_bytes / 16, n = B * T * row16;
  if (!n) return;
  kv_cache_write_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(static_cast<int4*>(cache.raw()),
                                                                static_cast<const int4*>(src.raw()), B, T, Tc, row16,
                                                                pos.first, pos.dev);
  CUDA_CHECK_LAUNCH("kv_cache_write");
}

// Shapes and positions were checked by the public op (kernels/cpu/attention_cached.cpp);
// here only this kernel's head-dim limit.
void attention_cached(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos) {
  const int pos0 = pos.first;
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3), Tc = kc.size(1), Hkv = kc.size(2);
  QT_CHECK(D <= 32 * kMaxPerLane, "attention_cached: head dim " + std::to_string(D) + " over " +
                                      std::to_string(32 * kMaxPerLane));
  if (!q.numel()) return;
  const dim3 grid(static_cast<unsigned>(Tq), static_cast<unsigned>(Hq), static_cast<unsigned>(B));
  attention_cached_kernel<<<grid, 32 * kWarps, 0, stream()>>>(
      fptr(out, "attention_cached out"), fptr(q, "attention_cached q"), fptr(kc, "attention_cached k"),
      fptr(vc, "attention_cached v"), int(Tq), int(Hq), int(Hkv), int(D), int(Tc), pos0, pos.dev, 1.f / std::sqrt(float(D)));
  CUDA_CHECK_LAUNCH("attention_cached");
}

}  // namespace qtrain::cuda
