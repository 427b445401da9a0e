// Decode attention: a few new query rows against the key/value cache.
//
// Shapes that decide the layout: a decode step has one query row per head and
// a context of a few hundred keys (SmolLM2-135M: Hq 9, Hkv 3, D 64; LLaMA-7B:
// Hq = Hkv = 32, D 128), so the whole op reads ~50-600 KB and is bound by
// latency, not bandwidth. The previous kernel ran one online-softmax step per
// key per warp (a scalar load, then a 5-step shuffle chain before the next
// key could start): 12.3 us per layer at 192 keys, ~10x the cache read.
//
// Here one block serves one (batch row, query row, kv head) and the up to
// kMaxGroup query heads that share that kv head (GQA), so K and V are read
// once for the group. The keys go in tiles of up to kMaxTile:
//  - every thread owns kElems consecutive head-dim elements (`lpr` lanes per
//    key, 16-byte loads) of U keys of the tile, and issues all of the tile's K
//    and V loads at once: one memory round trip per tile, not per key;
//  - phase 1: the lanes of a key sum their partial dot products (log2(lpr)
//    shuffles, shared by the group's heads) and write scores to shared memory;
//    one warp per head takes the tile's max and exponentials (online softmax
//    across tiles);
//  - phase 2: every thread adds p * V for its keys to its own accumulators;
//    at the end the key rows are summed (shuffles, then over the warps in
//    shared memory in a fixed order: deterministic, so a replayed graph gives
//    the eager step's numbers bit for bit).
// Where there are too few rows to fill the GPU (LLaMA-7B batch 1: 32 rows on
// 132 SMs, each block then reading ~100 KB of cache alone, two dependent
// memory round trips at 192 keys), the keys of a row are split over blocks
// (flash-decoding), combined one of two ways:
//  - a thread-block cluster of up to kMaxCluster blocks a row (sm_90): each
//    leaves its (max, sum, unnormalized output) in its shared memory, and after
//    the cluster barrier each block combines a slice of the row's outputs from
//    all of them (distributed shared memory: no global scratch, no counter, no
//    fence). Every block of the cluster runs, keys or none;
//  - long contexts, split wider than a cluster: up to kMaxSplits blocks, each
//    writes its part to scratch and the last to finish (a counter per row)
//    combines them, so there is no second launch.
//
// Captured CUDA graphs replay this launch at later positions (pos_dev), so
// the grid depends on the cache capacity Tc only; each block derives the
// active split count and its key range from the position it reads at run
// time, and blocks past the context exit at once.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/attention.h"

namespace qtrain::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kElems = 8;        // head-dim elements per thread: 16 bytes of BF16/F16, 32 of F32
constexpr int kMaxLanes = 32;    // lanes per key, one warp at most: head dim <= 256
constexpr int kMaxTile = 256;    // keys per tile: scores of a tile fit in shared memory
constexpr int kMaxGroup = 8;     // query heads per block (registers: q and the accumulators)
// Splitting a row's keys pays only when each split has several tiles of its
// own: the combine costs an L2 round trip, about what one tile does.
// QT_ATTN_SPLIT_KEYS overrides it (a split's minimum keys, for measuring). 128,
// 64 and 32 were slower than none at a 192-key context, even with 32 rows on
// 132 SMs (LLaMA-7B batch 1: 7 -> 7-9 us; batch 8 9 -> 16; H100, session 26,
// bench/results/decode_tried_not_kept_NVIDIA-H100_2026-12-07_s26.txt).
constexpr int kMinSplitKeys = 512;
constexpr int kMaxSplits = 32;
constexpr int kMaxCluster = 8;  // the portable cluster size
constexpr float kLog2e = 1.4426950408889634f;

// kElems cache values of one row as raw 32-bit words, converted on use (a
// prefetched BF16 chunk holds 4 registers, not 8). Rows whose head dim is not
// a multiple of kElems, or that are not 16-byte aligned, load element by
// element (kVec false: a kernel of its own, since that path's registers would
// otherwise count against the fast one's). n <= 0 (a lane past the head dim, a
// key past the range) gives zeros. Bits, not a reinterpret_cast of the
// register array, so that it stays in registers.
template <class T, bool kVec>
struct Chunk {
  static constexpr int kWords = kElems * int(sizeof(T)) / 4;
  uint32_t u[kWords];
  __device__ __forceinline__ void load(const T* p, int n) {
#pragma unroll
    for (int i = 0; i < kWords; ++i) u[i] = 0;
    if constexpr (kVec) {
      if (n < kElems) return;
#pragma unroll
      for (int i = 0; i < kWords / 4; ++i) {
        const int4 w = reinterpret_cast<const int4*>(p)[i];
        u[4 * i] = uint32_t(w.x), u[4 * i + 1] = uint32_t(w.y);
        u[4 * i + 2] = uint32_t(w.z), u[4 * i + 3] = uint32_t(w.w);
      }
    } else if constexpr (sizeof(T) == 4) {
#pragma unroll
      for (int k = 0; k < kElems; ++k)
        if (k < n) u[k] = reinterpret_cast<const uint32_t*>(p)[k];
    } else {
#pragma unroll
      for (int k = 0; k < kElems; ++k)
        if (k < n) u[k / 2] |= uint32_t(reinterpret_cast<const uint16_t*>(p)[k]) << (16 * (k % 2));
    }
  }
  __device__ __forceinline__ float operator[](int k) const {
    if constexpr (sizeof(T) == 4) return __uint_as_float(u[k]);
    const uint32_t h = k % 2 ? u[k / 2] >> 16 : u[k / 2] & 0xffffu;
    if constexpr (std::is_same_v<T, bf16>) return __uint_as_float(h << 16);
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
  }
};

// The warps' sums meet in shared memory at once where all of them fit beside the
// rest (32 KB up to 4 heads a block); 8 heads keep the pairwise tree (half of it).
template <int GB>
constexpr bool kOneShotSum = GB <= 4;

// Keys a thread prefetches per tile: 128 bytes of K and of V in flight per
// thread, halved for 8 heads per block (their q and accumulators take 128
// registers); 2 on the element-wise path, which only odd shapes take.
template <class T, int GB, bool kVec>
constexpr int kUnroll = !kVec ? 2 : (sizeof(T) == 4 ? 4 : 8) / (GB == kMaxGroup ? 2 : 1);

// Grid: x = row ((b * Tq + t) * Hkv + hk) * nsub + sub, y = split (the rank in a
// cluster of (1, S) blocks where `clustered`). Query head
// h = hk * G + sub * GB + g for g < GB (those past the group are computed on
// zeros and not written). lpr = 1 << lpr_log2 lanes per key.
// Two blocks per SM for one head per block (<= 128 registers, no spills): multi-head attention at batch 8
// (LLaMA-7B: 256 rows) is two waves at one block per SM (139 registers for BF16, one head),
// 20.5 us per layer against 9.3 at batch 1 (bench_decode, H200, 2026-12-04).
template <class T, int GB, bool kVec>
__global__ void __launch_bounds__(kThreads, GB == 1 ? 2 : 1)
    attention_cached_kernel(FloatPtr out, FloatPtr q, const T* kc, const T* vc, float* part, int* counters, int Tq,
                            int Hq, int Hkv, int D, int Tc, int nsub, int S, int min_keys, int lpr_log2, int pos0,
                            const int32_t* pos_dev, float scale, bool clustered) {
  constexpr int kU = kUnroll<T, GB, kVec>;
  // A replayed decode step's position: a copy before the step's kernels, so it may be read before
  // the PDL wait below.
  if (pos_dev) pos0 = *pos_dev;
  const int row = blockIdx.x, split = blockIdx.y;
  const int sub = row % nsub, hk = row / nsub % Hkv, t = row / nsub / Hkv % Tq, b = row / nsub / Hkv / Tq;
  const int G = Hq / Hkv, h0 = hk * G + sub * GB, ng = min(GB, G - sub * GB);
  const int nk = pos0 + t + 1;  // causal: row t sees the cache up to its own position

  // R key rows of lpr lanes a pass. Split geometry from the run-time position: splits of whole
  // passes; every block of the row agrees on it. Over global memory: each at least ~min_keys, none
  // empty. In a cluster: all S, the last ones empty where the keys are fewer than S passes.
  const int lpr = 1 << lpr_log2, R = kThreads >> lpr_log2;
  int active = clustered ? S : min(S, (nk + min_keys - 1) / min_keys);
  const int per = ((nk + active - 1) / active + R - 1) / R * R;
  if (!clustered) active = (nk + per - 1) / per;
  if (split >= active) return;
  const int j0 = min(nk, split * per), j1 = min(nk, j0 + per);
  // Tiles of U keys per thread, no more than a split holds.
  const int U = min(min(kU, kMaxTile / R), per / R), KT = R * U;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int c = tid & (lpr - 1), r = tid >> lpr_log2, d0 = c * kElems, nd = D - d0;

  // 32-bit offsets within a batch row (the host checks Tc * Hkv * D fits):
  // 16 prefetched keys' 64-bit addresses would take 64 registers.
  const int row_stride = Hkv * D;
  const T* kbase = kc + (int64_t(b) * Tc * Hkv + hk) * D + d0;
  const T* vbase = vc + (int64_t(b) * Tc * Hkv + hk) * D + d0;
  // This thread's keys of the tile at `base` below `lim` (zeros past it).
  auto load_tile = [&](Chunk<T, kVec>(&dst)[kU], const T* from, int base, int lim) {
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int j = base + u * R + r;
      dst[u].load(from + j * row_stride, u < U && j < lim ? nd : 0);
    }
  };
  // The first tile's keys before pos0 were written by earlier steps, not by a kernel this one may
  // overlap, so they load before the PDL wait (the launch latency of a decode step's attention is
  // most of its time); the keys the step itself appended load after it.
  Chunk<T, kVec> kr[kU], vr[kU];
  load_tile(kr, kbase, j0, min(j1, pos0));
  load_tile(vr, vbase, j0, min(j1, pos0));
  pdl_entry();  // decode-sized grids go with PDL (launch)
  if (pos0 < j1 && pos0 < j0 + KT)
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int j = j0 + u * R + r;
      if (u < U && j >= pos0 && j < j1) kr[u].load(kbase + j * row_stride, nd), vr[u].load(vbase + j * row_stride, nd);
    }

  // q pre-scaled into the log2 domain: scores feed exp2f.
  float qv[GB][kElems], acc[GB][kElems];
#pragma unroll
  for (int g = 0; g < GB; ++g)
#pragma unroll
    for (int e = 0; e < kElems; ++e) {
      const int64_t qi = ((int64_t(b) * Tq + t) * Hq + h0 + g) * D + d0 + e;
      qv[g][e] = g < ng && e < nd ? q.ld(qi) * scale * kLog2e : 0.f;
      acc[g][e] = 0.f;
    }

  __shared__ float s_p[GB][kMaxTile];                            // a tile's scores, then its exponentials
  __shared__ float s_m[GB], s_l[GB], s_corr[GB];                 // running max and sum per head
  __shared__ float s_red[kOneShotSum<GB> ? kWarps : kWarps / 2][GB][kMaxLanes * kElems];  // the sum over warps
  if (tid < GB) s_m[tid] = -INFINITY, s_l[tid] = 0.f;  // read after the first tile's barrier

  // Software pipelining: the next tile's K is requested as soon as this
  // tile's scores are made, its V once this tile's V is summed, so a block's
  // later tiles wait on the memory little or not at all.
  for (int base = j0; base < j1; base += KT) {
    // Phase 1: scores (the lanes of a key sum their parts; lane 0 writes).
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (u >= U) break;  // uniform over the block
      float sc[GB];
#pragma unroll
      for (int g = 0; g < GB; ++g) {
        float a = 0.f;
#pragma unroll
        for (int e = 0; e < kElems; ++e) a += qv[g][e] * kr[u][e];
        sc[g] = a;
      }
      for (int o = lpr / 2; o; o >>= 1)
#pragma unroll
        for (int g = 0; g < GB; ++g) sc[g] += __shfl_xor_sync(0xffffffffu, sc[g], o);
      const int k = u * R + r;
      if (c == 0)
#pragma unroll
        for (int g = 0; g < GB; ++g) s_p[g][k] = base + k < j1 ? sc[g] : -INFINITY;
    }
    if (base + KT < j1) load_tile(kr, kbase, base + KT, j1);
    __syncthreads();
    // Online softmax over tiles, one warp per head. The tile has a key in
    // range, so the new max is finite and exp2f(-inf) = 0 masks the rest.
    if (warp < GB) {
      const int g = warp;
      float mx = -INFINITY;
      for (int k = lane; k < KT; k += 32) mx = fmaxf(mx, s_p[g][k]);
      const float m_old = s_m[g], m_new = fmaxf(m_old, warp_max(mx));
      float sum = 0.f;
      for (int k = lane; k < KT; k += 32) sum += (s_p[g][k] = exp2f(s_p[g][k] - m_new));
      sum = warp_sum(sum);
      if (lane == 0) {
        const float corr = exp2f(m_old - m_new);
        s_corr[g] = corr, s_l[g] = s_l[g] * corr + sum, s_m[g] = m_new;
      }
    }
    __syncthreads();
    // Phase 2: p * V into this thread's accumulators.
#pragma unroll
    for (int g = 0; g < GB; ++g) {
      const float corr = s_corr[g];
#pragma unroll
      for (int e = 0; e < kElems; ++e) acc[g][e] *= corr;
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (u >= U) break;
      const int k = u * R + r;
#pragma unroll
      for (int g = 0; g < GB; ++g) {
        const float p = s_p[g][k];
#pragma unroll
        for (int e = 0; e < kElems; ++e) acc[g][e] += p * vr[u][e];
      }
    }
    if (base + KT < j1) load_tile(vr, vbase, base + KT, j1);
    __syncthreads();  // s_p is the next tile's
  }

  // Sum over key rows: the rows of a warp by shuffles, then over the warps.
  for (int o = lpr; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < GB; ++g)
#pragma unroll
      for (int e = 0; e < kElems; ++e) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
  const bool row0 = lane < lpr;  // the lanes of the warp's first key row hold its sum
  auto out_row = [&](int g) { return ((int64_t(b) * Tq + t) * Hq + h0 + g) * D; };
  const int64_t slot = D + 2;
  // A split's partial (m, l, acc[D]) per head: in scratch, or in s_p (its scores are spent) in a
  // cluster; with one split there is none.
  float* const mine = active > 1 && !clustered ? part + (int64_t(row) * S + split) * GB * slot : nullptr;
  if constexpr (kOneShotSum<GB>) {
    // Every warp's sum in shared memory at once, then each output element summed over the warps
    // in order by one thread, which writes it: one barrier where the pairwise tree took six.
#pragma unroll
    for (int g = 0; g < GB; ++g)
#pragma unroll
      for (int e = 0; e < kElems; ++e)
        if (row0) s_red[warp][g][d0 + e] = acc[g][e];
    __syncthreads();
    for (int i = tid; i < ng * D; i += kThreads) {
      const int g = i / D, d = i % D;
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) v += s_red[w][g][d];
      if (active == 1)
        out.st(out_row(g) + d, v * (1.f / s_l[g]));
      else if (clustered)
        s_p[g][d] = v;
      else
        mine[g * slot + 2 + d] = v;
    }
    if (active == 1) return;
    if (!clustered && tid < GB) mine[tid * slot] = s_m[tid], mine[tid * slot + 1] = s_l[tid];
  } else {
    for (int half = kWarps / 2; half; half >>= 1) {
      if (row0 && warp >= half && warp < 2 * half)
#pragma unroll
        for (int g = 0; g < GB; ++g)
#pragma unroll
          for (int e = 0; e < kElems; ++e) s_red[warp - half][g][d0 + e] = acc[g][e];
      __syncthreads();
      if (row0 && warp < half)
#pragma unroll
        for (int g = 0; g < GB; ++g)
#pragma unroll
          for (int e = 0; e < kElems; ++e) acc[g][e] += s_red[warp][g][d0 + e];
      __syncthreads();
    }
    // Warp 0's first row now holds the block's sums.
    if (active == 1) {
      if (warp == 0 && row0)
#pragma unroll
        for (int g = 0; g < GB; ++g)
          if (g < ng) {
            const float inv = 1.f / s_l[g];
#pragma unroll
            for (int e = 0; e < kElems; ++e)
              if (e < nd) out.st(out_row(g) + d0 + e, acc[g][e] * inv);
          }
      return;
    }
    if (warp == 0 && row0)
#pragma unroll
      for (int g = 0; g < GB; ++g) {
        if (c == 0 && !clustered) mine[g * slot] = s_m[g], mine[g * slot + 1] = s_l[g];
#pragma unroll
        for (int e = 0; e < kElems; ++e)
          if (e < nd) (clustered ? s_p[g][d0 + e] : mine[g * slot + 2 + d0 + e]) = acc[g][e];
      }
  }
  if (clustered) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // Every block's part is in its shared memory after the cluster barrier. Block `split` combines
    // its slice of the row's ng * D outputs, reading the S parts at once; a second barrier keeps each
    // block's shared memory until the others have read it.
    namespace cg = cooperative_groups;
    const cg::cluster_group cl = cg::this_cluster();
    cl.sync();
    const int n = ng * D, chunk = (n + S - 1) / S, end = min(n, (split + 1) * chunk);
    for (int i = split * chunk + tid; i < end; i += kThreads) {
      const int g = i / D, d = i % D;
      float m[kMaxCluster], l[kMaxCluster], a[kMaxCluster];
#pragma unroll
      for (int s = 0; s < kMaxCluster; ++s)
        if (s < S) {
          m[s] = *cl.map_shared_rank(&s_m[g], unsigned(s));
          l[s] = *cl.map_shared_rank(&s_l[g], unsigned(s));
          a[s] = *cl.map_shared_rank(&s_p[g][d], unsigned(s));
        }
      float M = -INFINITY;
#pragma unroll
      for (int s = 0; s < kMaxCluster; ++s)
        if (s < S) M = fmaxf(M, m[s]);
      float L = 0.f, o = 0.f;  // an empty block's part: m -inf, l 0, sums 0, so its weight is 0
#pragma unroll
      for (int s = 0; s < kMaxCluster; ++s)
        if (s < S) {
          const float w = exp2f(m[s] - M);
          L += l[s] * w, o += a[s] * w;
        }
      out.st(out_row(g) + d, o / L);
    }
    cl.sync();
#else
    __trap();  // launched clustered only on sm_90 (clusters_supported), which this build lacks: stop, never a wrong result
#endif
    return;
  }
  __threadfence();  // the partial is visible device-wide before the counter moves
  __syncthreads();
  __shared__ bool s_last;
  if (tid == 0) s_last = atomicAdd(&counters[row], 1) == active - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  if (tid == 0) counters[row] = 0;  // ready for the next launch (a graph replays this one)
  const float* parts = part + int64_t(row) * S * GB * slot;
  __shared__ float s_w[kMaxSplits][GB];  // each split's weight exp2(m_s - M) / L per head
  if (tid < GB) {
    float M = -INFINITY, L = 0.f;
    for (int s = 0; s < active; ++s) M = fmaxf(M, __ldcg(parts + (s * GB + tid) * slot));
    for (int s = 0; s < active; ++s)
      L += __ldcg(parts + (s * GB + tid) * slot + 1) * exp2f(__ldcg(parts + (s * GB + tid) * slot) - M);
    for (int s = 0; s < active; ++s) s_w[s][tid] = exp2f(__ldcg(parts + (s * GB + tid) * slot) - M) / L;
  }
  __syncthreads();
  for (int i = tid; i < ng * D; i += kThreads) {
    const int g = i / D, d = i % D;
    float o = 0.f;
    for (int s = 0; s < active; ++s) o += s_w[s][g] * __ldcg(parts + (s * GB + g) * slot + 2 + d);
    out.st(out_row(g) + d, o);
  }
}

// One thread per 16 bytes of the new rows: src [B,T,row] into cache [B,Tc,row]
// at position pos0 (or *pos_dev) of every batch row.
__global__ void kv_cache_write_kernel(int4* cache, const int4* src, int64_t B, int64_t T, int64_t Tc, int64_t row16,
                                      int pos0, const int32_t* pos_dev) {
  if (pos_dev) pos0 = *pos_dev;
  const int64_t per_b = T * row16, n = B * per_b;
  QT_GRID_STRIDE(i, n) {
    const int64_t b = i / per_b, r = i - b * per_b;
    cache[(b * Tc + pos0) * row16 + r] = src[i];
  }
}

// The split counters (one int per row, zero between launches) and the
// partials, in this op's scratch slot. The counters are zeroed when the slot
// moves or their span changes (partials of another shape may have covered
// it); a launch leaves them at zero, so a graph replays without resetting.
struct SplitScratch {
  int* counters;
  float* part;
};
SplitScratch split_scratch(int64_t rows, int64_t S, int64_t GB, int64_t D) {
  static void* zeroed = nullptr;
  static size_t zeroed_bytes = 0;
  const size_t cbytes = (size_t(rows) * sizeof(int) + 255) / 256 * 256;
  const size_t pbytes = size_t(rows * S * GB * (D + 2)) * sizeof(float);
  char* base = static_cast<char*>(Context::get().scratch(Scratch::DecodeAttn, cbytes + pbytes));
  if (base != zeroed || cbytes != zeroed_bytes) {
    CUDA_CHECK(cudaMemsetAsync(base, 0, cbytes, stream()));
    zeroed = base, zeroed_bytes = cbytes;
  }
  return {reinterpret_cast<int*>(base), reinterpret_cast<float*>(base + cbytes)};
}

// Thread-block clusters and distributed shared memory: sm_90 on.
bool clusters_supported() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    return major >= 9;
  }();
  return yes;
}

template <class T, int GB>
void launch(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos, int nsub, int lpr_log2) {
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3), Tc = kc.size(1), Hkv = kc.size(2);
  const int64_t rows = B * Tq * Hkv * nsub;
  // Splits only when the rows leave the GPU short of ~2 blocks per SM and the
  // cache can hold several kMinSplitKeys; sized from the capacity Tc (not the
  // position), so eager and replayed steps launch the same grid.
  static const int min_keys = int(std::min<size_t>(env_size("QT_ATTN_SPLIT_KEYS", kMinSplitKeys), 1 << 20));
  const int64_t sms = Context::get().sm_count(), want = (2 * sms + rows - 1) / rows;
  const int64_t fit = (Tc + min_keys - 1) / min_keys;
  int S = int(std::max<int64_t>(1, std::min<int64_t>({want, fit, int64_t(kMaxSplits)})));
  // A cluster per row where the rows leave SMs idle: the widest power of two up to attention_cluster()
  // whose blocks are still resident at once (two a SM for one head a block), unless the global split
  // goes wider (long contexts).
  const int per_sm = GB == 1 ? 2 : 1;
  int SC = 1;
  while (SC * 2 <= std::min(attention_cluster(), kMaxCluster) && rows * SC * 2 <= per_sm * sms) SC *= 2;
  const bool clustered = SC >= 2 && SC >= S && clusters_supported();
  if (clustered) S = SC;
  note_attention_split({S, clustered});
  SplitScratch ss{nullptr, nullptr};
  if (S > 1 && !clustered) ss = split_scratch(rows, S, GB, D);
  const bool vec = D % kElems == 0 && reinterpret_cast<uintptr_t>(kc.raw()) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(vc.raw()) % 16 == 0;
  QT_CHECK(rows <= 0x7fffffff && Tc * Hkv * D <= 0x7fffffff, "attention_cached: a cache of " +
                                                                  std::to_string(Tc * Hkv * D) +
                                                                  " elements per batch row, " + std::to_string(rows) +
                                                                  " rows: over this kernel's 32-bit offsets");
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(S));
  auto kernel = vec ? attention_cached_kernel<T, GB, true> : attention_cached_kernel<T, GB, false>;
  launch_pdl_cluster(pdl_small(rows * S, per_sm), dim3(1, clustered ? unsigned(S) : 1u, 1), kernel, grid, dim3(kThreads), 0,
      fptr(out, "attention_cached out"), fptr(q, "attention_cached q"), static_cast<const T*>(kc.raw()),
      static_cast<const T*>(vc.raw()), ss.part, ss.counters, int(Tq), int(Hq), int(Hkv), int(D), int(Tc), nsub, S,
      min_keys, lpr_log2, pos.first, pos.dev, 1.f / std::sqrt(float(D)), clustered);
  CUDA_CHECK_LAUNCH("attention_cached");
}

template <class T>
void launch_group(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos, int G, int lpr_log2) {
  // The group's heads in nsub blocks of GB (a power of two, so the unrolled
  // head loops waste at most half: G 3 -> 4, G 12 -> 2 x 8).
  const int nsub = (G + kMaxGroup - 1) / kMaxGroup, per = (G + nsub - 1) / nsub;
  if (per == 1) return launch<T, 1>(out, q, kc, vc, pos, nsub, lpr_log2);
  if (per == 2) return launch<T, 2>(out, q, kc, vc, pos, nsub, lpr_log2);
  if (per <= 4) return launch<T, 4>(out, q, kc, vc, pos, nsub, lpr_log2);
  launch<T, 8>(out, q, kc, vc, pos, nsub, lpr_log2);
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
// here only this kernel's head-dim limit and one dtype for both caches.
void attention_cached(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos) {
  const int64_t Hq = q.size(2), D = q.size(3), Hkv = kc.size(2);
  QT_CHECK(D <= kMaxLanes * kElems, "attention_cached: head dim " + std::to_string(D) + " over " +
                                        std::to_string(kMaxLanes * kElems));
  QT_CHECK(kc.dtype() == vc.dtype(), std::string("attention_cached: k cache ") + dtype_name(kc.dtype()) +
                                         " and v cache " + dtype_name(vc.dtype()) + " differ");
  fptr(kc, "attention_cached k");  // a float tensor on the GPU
  if (!q.numel()) return;
  // Lanes per key: a power of two covering the head dim in kElems chunks.
  int lpr_log2 = 0;
  while ((kElems << lpr_log2) < D) ++lpr_log2;
  const int G = int(Hq / Hkv);
  switch (kc.dtype()) {
    case DType::BF16: return launch_group<bf16>(out, q, kc, vc, pos, G, lpr_log2);
    case DType::F16: return launch_group<__half>(out, q, kc, vc, pos, G, lpr_log2);
    default: return launch_group<float>(out, q, kc, vc, pos, G, lpr_log2);
  }
}

}  // namespace qtrain::cuda
