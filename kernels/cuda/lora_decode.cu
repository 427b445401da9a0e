// kernels/lora_decode.h on the GPU: a set of up to three LoRA adapters that
// read one x of M <= kLoraDecodeMaxRows rows, in two launches.
//   down: one warp per (1024-element chunk of `in`, rank row j of adapter i): the chunk's part of
//         t[i][j][m] = x[m] . A_i[j] (F32), x from L1 (every warp reads it);
//   up:   one thread per output row n of adapter i: y_i[m, n] += s_i sum_j t[i][j][m] B_i[n, j],
//         every t of the set (its chunks summed in order) in shared memory (at most kLoraDecodeMaxShared x
//         kLoraDecodeMaxRank x 16 floats). Every block sums the chunks again (a few
//         hundred L2 reads each; a third launch to sum them once was not tried).
// Bytes: A and B once (r (in + out) BF16 each), x per warp from L1: the pair is
// bound by launch latency at these sizes, which is why it is two launches for
// the set and not three cuBLAS kernels per adapter. Both parts in one launch
// (up blocks waiting on a counter the down blocks raise) measured no faster:
// LLaMA-7B NF4 + LoRA r16 3.75 / 5.20 ms per token at batch 1 / 8 against 3.62 /
// 5.04 for two (H100, 2026-12-06).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/lora_decode.h"

namespace qtrain::cuda {
namespace {

constexpr int kMaxR = int(kLoraDecodeMaxRank);
static_assert(kLoraDecodeMaxRows == 16, "launch_pair's instances: 1, 4, 8 and 16 rows");

struct LoraPart {
  const bf16* a;   // [r, in]
  const bf16* b;   // [out, r]
  FloatPtr y;      // [M, out]
  float s;
  int r, out;
  int row0;        // the part's first rank row in the set's numbering (t's row)
  int out0;        // the part's first output row in the set's numbering
};
struct LoraSet {
  LoraPart p0, p1, p2;  // named: a run-time index into a kernel parameter copies it to the stack
  int rows, outs;       // rank rows and output rows of the whole set
  int n;
};

// The part owning set row k of a numbering (first = row0 or out0), field by field.
__device__ __forceinline__ LoraPart part_at(const LoraSet& s, int i) {
  LoraPart p;
#define QT_PICK(f) p.f = i == 0 ? s.p0.f : i == 1 ? s.p1.f : s.p2.f
  QT_PICK(a);
  QT_PICK(b);
  QT_PICK(y.p);
  QT_PICK(y.t);
  QT_PICK(s);
  QT_PICK(r);
  QT_PICK(out);
  QT_PICK(row0);
  QT_PICK(out0);
#undef QT_PICK
  return p;
}
__device__ __forceinline__ int part_of_row(const LoraSet& s, int k) {
  return int(s.n > 1 && k >= s.p1.row0) + int(s.n > 2 && k >= s.p2.row0);
}
__device__ __forceinline__ int part_of_out(const LoraSet& s, int k) {
  return int(s.n > 1 && k >= s.p1.out0) + int(s.n > 2 && k >= s.p2.out0);
}

// Each warp owns one (k-chunk, rank row): kChunk elements of `in`, kIters 16-byte loads per lane,
// all issued before any is used. One warp per whole rank row was 6 blocks for LLaMA-7B's q/k/v (48
// rank rows) walking 4096-11008 elements each: latency-bound, and at 8 x rows slower than cuBLAS
// (NF4 + LoRA r16 decode at batch 8: 10.7 ms per token against 6.67; H200, 2026-12-04).
constexpr int kIters = 4, kChunk = 32 * 8 * kIters;

// tp [chunk][set rows][kM], F32: each chunk's partial dot products; lora_up_kernel sums them in
// chunk order (deterministic, so a replayed graph gives the eager step's bits). kM, the rows the
// kernels are built for (1, 4, 8 or 16; M <= kM): rows past M read x row M - 1 (every load and FMA
// unconditional, so a lane issues its loads together), and their sums are written and never stored.
template <int kM>
__global__ void lora_down_kernel(LoraSet set, const bf16* __restrict__ x, int M, int in, float* __restrict__ tp) {
  const int wid = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  const int row = wid % set.rows, chunk = wid / set.rows;
  if (chunk * kChunk >= in) return;
  const LoraPart p = part_at(set, part_of_row(set, row));
  const bf16* a = p.a + int64_t(row - p.row0) * in;
  int4 wv[kIters];
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int k = chunk * kChunk + (i * 32 + lane) * 8;
    wv[i] = k < in ? __ldg(reinterpret_cast<const int4*>(a + k)) : make_int4(0, 0, 0, 0);
  }
  float acc[kM] = {};
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int k = chunk * kChunk + (i * 32 + lane) * 8;
    if (k >= in) break;
    float w[8];
    bf16x8_to_f32(wv[i], w);
    int4 xq[kM];
#pragma unroll
    for (int m = 0; m < kM; ++m) xq[m] = __ldg(reinterpret_cast<const int4*>(x + int64_t(min(m, M - 1)) * in + k));
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      float xv[8];
      bf16x8_to_f32(xq[m], xv);
      float d = 0.f;
#pragma unroll
      for (int q = 0; q < 8; ++q) d += w[q] * xv[q];
      acc[m] += d;
    }
  }
#pragma unroll
  for (int m = 0; m < kM; ++m) {
    const float v = warp_sum(acc[m]);
    if (lane == 0) tp[(int64_t(chunk) * set.rows + row) * kM + m] = v;
  }
}

template <int kM>
__global__ void lora_up_kernel(LoraSet set, int M, int chunks, const float* __restrict__ tp) {
  __shared__ float ts[kLoraDecodeMaxShared * kMaxR * kM];
  for (int i = threadIdx.x; i < set.rows * kM; i += blockDim.x) {
    float v = 0.f;
    for (int c = 0; c < chunks; ++c) v += tp[int64_t(c) * set.rows * kM + i];
    ts[i] = v;
  }
  __syncthreads();
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= set.outs) return;
  const LoraPart p = part_at(set, part_of_out(set, k));
  const int n = k - p.out0;
  const bf16* b = p.b + int64_t(n) * p.r;
  float acc[kM] = {};
  const bool vec = p.r % 8 == 0 && reinterpret_cast<uintptr_t>(b) % 16 == 0;  // the B row as 16-byte loads
  for (int j0 = 0; j0 < p.r; j0 += 8) {
    float w[8];
    if (vec) {
      bf16x8_to_f32(__ldg(reinterpret_cast<const int4*>(b + j0)), w);
    } else {
#pragma unroll
      for (int q = 0; q < 8; ++q) w[q] = j0 + q < p.r ? __bfloat162float(b[j0 + q]) : 0.f;
    }
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      if (j0 + q >= p.r) break;
      const float* tj = ts + (p.row0 + j0 + q) * kM;
#pragma unroll
      for (int m = 0; m < kM; ++m) acc[m] += tj[m] * w[q];
    }
  }
#pragma unroll
  for (int m = 0; m < kM; ++m) {
    if (m >= M) break;
    const int64_t at = int64_t(m) * p.out + n;
    p.y.st(at, p.y.ld(at) + p.s * acc[m]);
  }
}

template <int kM>
void launch_pair(const LoraSet& set, const bf16* x, int M, int in) {
  const int chunks = (in + kChunk - 1) / kChunk, warps = chunks * set.rows;
  Tensor tp = Tensor::empty({int64_t(warps) * kM}, DType::F32, Device::CUDA);
  constexpr int kWarps = 8;
  lora_down_kernel<kM><<<(warps + kWarps - 1) / kWarps, kWarps * 32, 0, stream()>>>(set, x, M, in, tp.f32());
  CUDA_CHECK_LAUNCH("lora_decode_shared down");
  lora_up_kernel<kM><<<(set.outs + 127) / 128, 128, 0, stream()>>>(set, M, chunks, tp.f32());
  CUDA_CHECK_LAUNCH("lora_decode_shared up");
}

}  // namespace

void lora_decode_shared(const std::vector<Tensor>& ys, Tensor x, const std::vector<Tensor>& as,
                        const std::vector<Tensor>& bs, const std::vector<float>& scales) {
  const int M = int(x.size(0)), in = int(x.size(1));
  if (M == 0) return;
  LoraSet set{};
  LoraPart* parts[3] = {&set.p0, &set.p1, &set.p2};
  for (size_t i = 0; i < as.size(); ++i) {
    *parts[i] = LoraPart{static_cast<const bf16*>(as[i].raw()), static_cast<const bf16*>(bs[i].raw()),
                         fptr(ys[i], "lora_decode_shared y"), scales[i], int(as[i].size(0)), int(bs[i].size(0)),
                         set.rows, set.outs};
    set.rows += int(as[i].size(0));
    set.outs += int(bs[i].size(0));
  }
  set.n = int(as.size());
  const auto* px = static_cast<const bf16*>(x.raw());
  if (M == 1)  // batch 1: no row clamped
    launch_pair<1>(set, px, M, in);
  else if (M <= 4)
    launch_pair<4>(set, px, M, in);
  else if (M <= 8)
    launch_pair<8>(set, px, M, in);
  else
    launch_pair<16>(set, px, M, in);
}

}  // namespace qtrain::cuda
