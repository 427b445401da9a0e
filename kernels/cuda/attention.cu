// Causal GQA attention. The public ops first offer the call to cuDNN's fused
// SDPA (attention_cudnn.h, the default where libcudnn loads); the kernels here
// run when it declines (--attention own, no cuDNN, shapes it refuses).
// FlashAttention-2 style: O(T) memory, the T x T score matrix never reaches
// global memory.
//   forward : block = (64 query rows, head, batch); loops over key tiles up to
//             the diagonal with an online softmax; saves lse = m + log(l).
//   backward: block = (64 key rows, kv head, batch); loops over the query heads
//             of its group and the query tiles at or below the diagonal,
//             recomputing P from lse; dK, dV accumulate in shared memory, dQ
//             with F32 atomics. D_i = rowsum(dO * O) comes from a small kernel.
// Tiles are multiplied on tensor cores (wmma, BF16 in, F32 out); softmax and
// masking run on shared-memory copies (see attention_tiles.cuh).
#include <cmath>

#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/attention_generic.cuh"
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/attention.h"

namespace qtrain::cuda {
namespace {

using namespace attn;
using RowA = wmma::row_major;
using ColA = wmma::col_major;

template <int D>
struct Layout {
  static constexpr int LH = D + kPadH;      // BF16 [64][D] tiles
  static constexpr int LF = D + kPadF;      // F32 [64][D] tiles
  static constexpr int LS = kTile + kPadF;  // F32 [64][64] scores
  static constexpr int LP = kTile + kPadH;  // BF16 [64][64] probabilities
  static constexpr size_t kTileH = size_t(kTile) * LH * 2, kTileF = size_t(kTile) * LF * 4;
  static constexpr size_t kScores = size_t(kTile) * LS * 4, kProbs = size_t(kTile) * LP * 2;
  static constexpr size_t kRowStats = 2 * kTile * 4;
  static constexpr size_t kForwardBytes = 3 * kTileH + kScores + kProbs + kTileF + kRowStats;
  static constexpr size_t kBackwardBytes = 4 * kTileH + kScores + 2 * kProbs + kRowStats;
};

template <int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k,
                                                                     const bf16* v, int T, int Hq, int Hkv, float scale) {
  using L = Layout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + kTile * L::LH;
  bf16* Vs = Ks + kTile * L::LH;
  float* Ss = reinterpret_cast<float*>(Vs + kTile * L::LH);
  bf16* Ps = reinterpret_cast<bf16*>(Ss + kTile * L::LS);
  float* Os = reinterpret_cast<float*>(Ps + kTile * L::LP);
  float* row_m = Os + kTile * L::LF;
  float* row_l = row_m + kTile;

  // Longest tiles (most keys under the causal mask) are scheduled first.
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x), h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (Hq / Hkv);
  const int q0 = qt * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t qs = int64_t(Hq) * D, ks = int64_t(Hkv) * D;

  load_tile<D>(Qs, q + (int64_t(b) * T + q0) * qs + int64_t(h) * D, qs, min(kTile, T - q0));
  for (int i = threadIdx.x; i < kTile * L::LF; i += kThreads) Os[i] = 0.f;
  if (threadIdx.x < kTile) {
    row_m[threadIdx.x] = -INFINITY;
    row_l[threadIdx.x] = 0.f;
  }
  float* Sw = Ss + 16 * warp * L::LS;
  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * kTile;
    __syncthreads();  // every warp is done with the previous K/V tile
    const int64_t koff = (int64_t(b) * T + k0) * ks + int64_t(hk) * D;
    load_tile<D>(Ks, k + koff, ks, min(kTile, T - k0));
    load_tile<D>(Vs, v + koff, ks, min(kTile, T - k0));
    __syncthreads();
    {
      Acc acc[kTile / 16];
      fill_frags(acc, 0.f);
      warp_mma_regs<RowA, ColA>(acc, Qs + 16 * warp * L::LH, L::LH, Ks, L::LH, D / 16);
      store_frags(Sw, L::LS, acc);
    }
    __syncwarp();
    {  // Online softmax: a lane pair per row, each lane half the tile's 64 columns.
      const int r = lane >> 1, half = lane & 1;
      const int row = 16 * warp + r, tq = q0 + row, c0 = 32 * half;
      const float* srow = Sw + r * L::LS + c0;
      auto score = [&](int c) {
        int tk = k0 + c0 + c;
        return (tk <= tq && tk < T) ? srow[c] * scale : -INFINITY;
      };
      float mx = -INFINITY;
#pragma unroll 8
      for (int c = 0; c < 32; ++c) mx = fmaxf(mx, score(c));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float m_old = row_m[row];
      const float m_new = fmaxf(m_old, mx);  // finite: key 0 is visible to every row
      float sum = 0.f;
      bf16* prow = Ps + row * L::LP + c0;
#pragma unroll 8
      for (int c = 0; c < 32; ++c) {
        float p = expf(score(c) - m_new);
        prow[c] = __float2bfloat16_rn(p);
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      const float alpha = expf(m_old - m_new);
      float* orow = Os + row * L::LF + half * (D / 2);
#pragma unroll 8
      for (int d = 0; d < D / 2; ++d) orow[d] *= alpha;
      __syncwarp();  // both lanes of the pair have read row_m before it changes
      if (half == 0) {
        row_m[row] = m_new;
        row_l[row] = row_l[row] * alpha + sum;
      }
    }
    __syncwarp();
    {
      Acc acc[D / 16];
      float* Ow = Os + 16 * warp * L::LF;
      load_frags(acc, Ow, L::LF);
      warp_mma_regs<RowA, RowA>(acc, Ps + 16 * warp * L::LP, L::LP, Vs, L::LH, kTile / 16);
      store_frags(Ow, L::LF, acc);
    }
  }
  __syncwarp();
  for (int r = 0; r < 16; ++r) {
    const int row = 16 * warp + r, tq = q0 + row;
    if (tq >= T) break;
    float l = row_l[row], inv = 1.f / l;
    bf16* o = out + (int64_t(b) * T + tq) * qs + int64_t(h) * D;
    for (int d = lane; d < D; d += 32) o[d] = __float2bfloat16_rn(Os[row * L::LF + d] * inv);
    if (lane == 0) lse[(int64_t(b) * Hq + h) * T + tq] = row_m[row] + logf(l);
  }
}

// Di[b, h, t] = sum_d dout * out, one warp per (b, t, h) row.
__global__ void attention_rowdot_kernel(float* Di, const bf16* dout, const bf16* out, int64_t rows, int T, int Hq, int D) {
  int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += __bfloat162float(dout[r * D + d]) * __bfloat162float(out[r * D + d]);
    s = warp_sum(s);
    int h = int(r % Hq);
    int64_t bt = r / Hq;
    int64_t b = bt / T, t = bt % T;
    if (lane == 0) Di[(b * Hq + h) * T + t] = s;
  }
}

// dK and dV of the block's 64 keys live in registers (warp w: keys 16w..16w+15)
// for the whole loop; the dQ partial of each query tile is staged in the Q/dO
// tiles' shared memory once those are consumed, then added with F32 atomics.
template <int D>
__global__ void __launch_bounds__(kThreads, 2)
    attention_backward_kernel(float* dq_acc, FloatPtr dk, FloatPtr dv, const bf16* dout, const bf16* q, const bf16* k,
                              const bf16* v, const float* lse, const float* Di, int T, int Hq, int Hkv, float scale) {
  using L = Layout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + kTile * L::LH;
  bf16* Qs = Vs + kTile * L::LH;
  bf16* dOs = Qs + kTile * L::LH;  // Qs..dOs together also hold an F32 [64][LF] staging tile
  float* Ss = reinterpret_cast<float*>(dOs + kTile * L::LH);
  bf16* Ps = reinterpret_cast<bf16*>(Ss + kTile * L::LS);
  bf16* dSs = Ps + kTile * L::LP;
  float* lse_s = reinterpret_cast<float*>(dSs + kTile * L::LP);
  float* Di_s = lse_s + kTile;
  float* stage = reinterpret_cast<float*>(Qs);
  static_assert(size_t(kTile) * L::LF * 4 <= 2 * L::kTileH, "staging tile must fit in the Q and dO tiles");

  const int kt = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int G = Hq / Hkv, k0 = kt * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t qs = int64_t(Hq) * D, ks = int64_t(Hkv) * D;
  const int q_tiles = (T + kTile - 1) / kTile;

  const int64_t koff = (int64_t(b) * T + k0) * ks + int64_t(hk) * D;
  load_tile<D>(Ks, k + koff, ks, min(kTile, T - k0));
  load_tile<D>(Vs, v + koff, ks, min(kTile, T - k0));
  Acc dk_acc[D / 16], dv_acc[D / 16];
  fill_frags(dk_acc, 0.f);
  fill_frags(dv_acc, 0.f);
  float* Sw = Ss + 16 * warp * L::LS;

  for (int g = 0; g < G; ++g) {
    const int h = hk * G + g;
    for (int qt = kt; qt < q_tiles; ++qt) {
      const int q0 = qt * kTile;
      __syncthreads();  // the previous tile's readers of Qs/dOs (and the dQ stage) are done
      const int64_t qoff = (int64_t(b) * T + q0) * qs + int64_t(h) * D;
      load_tile<D>(Qs, q + qoff, qs, min(kTile, T - q0));
      load_tile<D>(dOs, dout + qoff, qs, min(kTile, T - q0));
      if (threadIdx.x < kTile) {
        int tq = q0 + threadIdx.x;
        int64_t si = (int64_t(b) * Hq + h) * T + tq;
        lse_s[threadIdx.x] = tq < T ? lse[si] : 0.f;
        Di_s[threadIdx.x] = tq < T ? Di[si] : 0.f;
      }
      __syncthreads();
      {  // S = Q K^T, then P = exp(S * scale - lse) under the causal mask (this warp's rows)
        Acc acc[kTile / 16];
        fill_frags(acc, 0.f);
        warp_mma_regs<RowA, ColA>(acc, Qs + 16 * warp * L::LH, L::LH, Ks, L::LH, D / 16);
        store_frags(Sw, L::LS, acc);
      }
      __syncwarp();
      for (int r = 0; r < 16; ++r) {
        const int row = 16 * warp + r, tq = q0 + row;
        for (int c = lane; c < kTile; c += 32) {
          int tk = k0 + c;
          float p = (tq < T && tk <= tq) ? expf(Sw[r * L::LS + c] * scale - lse_s[row]) : 0.f;
          Ps[row * L::LP + c] = __float2bfloat16_rn(p);
        }
      }
      __syncwarp();
      {  // dP = dO V^T into the score rows; dS = P * (dP - D_i) * scale
        Acc acc[kTile / 16];
        fill_frags(acc, 0.f);
        warp_mma_regs<RowA, ColA>(acc, dOs + 16 * warp * L::LH, L::LH, Vs, L::LH, D / 16);
        store_frags(Sw, L::LS, acc);
      }
      __syncwarp();
      for (int r = 0; r < 16; ++r) {
        const int row = 16 * warp + r;
        for (int c = lane; c < kTile; c += 32) {
          float p = __bfloat162float(Ps[row * L::LP + c]);
          dSs[row * L::LP + c] = __float2bfloat16_rn(p * (Sw[r * L::LS + c] - Di_s[row]) * scale);
        }
      }
      __syncthreads();  // dV and dK read every row of P and dS
      warp_mma_regs<ColA, RowA>(dv_acc, Ps + 16 * warp, L::LP, dOs, L::LH, kTile / 16);
      warp_mma_regs<ColA, RowA>(dk_acc, dSs + 16 * warp, L::LP, Qs, L::LH, kTile / 16);
      __syncthreads();  // Q and dO consumed: their memory becomes the dQ stage
      float* stage_w = stage + 16 * warp * L::LF;
      for (int j = 0; j < D / 16; ++j) {  // dQ = dS K, one 16-column block at a time
        Acc acc[1];
        fill_frags(acc, 0.f);
        warp_mma_regs<RowA, RowA>(acc, dSs + 16 * warp * L::LP, L::LP, Ks + 16 * j, L::LH, kTile / 16);
        store_frags(stage_w + 16 * j, L::LF, acc);
      }
      __syncwarp();
      for (int idx = lane; idx < 16 * (D / 4); idx += 32) {
        const int r = idx / (D / 4), c = (idx % (D / 4)) * 4, tq = q0 + 16 * warp + r;
        if (tq >= T) continue;
        float4 val = *reinterpret_cast<const float4*>(stage_w + r * L::LF + c);
        float* dst = dq_acc + (int64_t(b) * T + tq) * qs + int64_t(h) * D + c;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float4*>(dst), val);
#else
        atomicAdd(dst, val.x), atomicAdd(dst + 1, val.y), atomicAdd(dst + 2, val.z), atomicAdd(dst + 3, val.w);
#endif
      }
    }
  }
  // Write dK then dV through the staging tile: fragments -> shared -> global.
  // (Two calls, not a loop over a selected array: a run-time choice between
  // register arrays would push them to local memory.)
  const int valid = min(kTile, T - k0);
  auto write_out = [&](const Acc(&acc)[D / 16], FloatPtr dst) {
    __syncthreads();
    store_frags(stage + 16 * warp * L::LF, L::LF, acc);
    __syncthreads();
    for (int i = threadIdx.x; i < valid * D; i += kThreads) {
      int r = i / D, d = i % D;
      dst.st(koff + int64_t(r) * ks + d, stage[r * L::LF + d]);
    }
  };
  write_out(dk_acc, dk);
  write_out(dv_acc, dv);
}

using Dims = AttnDims;

bool tiled_head_dim(int D) { return D == 64 || D == 128; }

// Shapes and devices were checked by the public op (kernels/cpu/attention.cpp);
// here only what these kernels take: BF16 q/k/v, 16-byte aligned, head dims
// up to kGenericMaxHeadDim.
Dims check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, const char* what) {
  Dims d{int(q.size(0)), int(q.size(1)), int(q.size(2)), int(k.size(2)), int(q.size(3))};
  for (const Tensor* t : {&q, &k, &v}) {
    check_cuda_dtype(*t, DType::BF16, what);
    QT_CHECK(reinterpret_cast<uintptr_t>(t->raw()) % 16 == 0, std::string(what) + ": q/k/v not 16-byte aligned");
  }
  if (d.D < 1 || d.D > kGenericMaxHeadDim)
    throw Error(std::string(what) + ": head dim " + std::to_string(d.D) +
                    " is not supported by the CUDA attention kernels (1.." + std::to_string(kGenericMaxHeadDim) + ")",
                ErrorKind::BadInput);
  return d;
}

template <class Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  QT_CHECK(bytes <= Context::get().max_smem_optin(), "attention: tile does not fit in shared memory");
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <int D>
void forward_d(const Dims& d, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  auto kernel = attention_forward_kernel<D>;
  size_t smem = Layout<D>::kForwardBytes;
  set_smem(kernel, smem);
  dim3 grid(unsigned((d.T + kTile - 1) / kTile), unsigned(d.Hq), unsigned(d.B));
  kernel<<<grid, kThreads, smem, stream()>>>(static_cast<bf16*>(out.raw()), lse.f32(), static_cast<const bf16*>(q.raw()),
                                             static_cast<const bf16*>(k.raw()), static_cast<const bf16*>(v.raw()), d.T,
                                             d.Hq, d.Hkv, 1.f / std::sqrt(float(d.D)));
  CUDA_CHECK_LAUNCH("attention_forward");
}

template <int D>
void backward_d(const Dims& d, float* dq_acc, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                const float* lse, const float* Di) {
  auto kernel = attention_backward_kernel<D>;
  size_t smem = Layout<D>::kBackwardBytes;
  set_smem(kernel, smem);
  dim3 grid(unsigned((d.T + kTile - 1) / kTile), unsigned(d.Hkv), unsigned(d.B));
  kernel<<<grid, kThreads, smem, stream()>>>(dq_acc, fptr(dk, "attention dk"), fptr(dv, "attention dv"),
                                             static_cast<const bf16*>(dout.raw()), static_cast<const bf16*>(q.raw()),
                                             static_cast<const bf16*>(k.raw()), static_cast<const bf16*>(v.raw()), lse,
                                             Di, d.T, d.Hq, d.Hkv, 1.f / std::sqrt(float(d.D)));
  CUDA_CHECK_LAUNCH("attention_backward");
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  Dims d = check_qkv(q, k, v, "attention_forward");
  check_cuda_dtype(out, DType::BF16, "attention_forward out");
  check_cuda_dtype(lse, DType::F32, "attention_forward lse");
  if (q.numel() == 0) return;
  if (cudnn_attention_forward(out, lse, q, k, v)) return;
  if (d.D == 64)
    forward_d<64>(d, out, lse, q, k, v);
  else if (d.D == 128)
    forward_d<128>(d, out, lse, q, k, v);
  else
    attention_forward_generic(d, out, lse, q, k, v);
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse) {
  Dims d = check_qkv(q, k, v, "attention_backward");
  check_cuda_dtype(dout, DType::BF16, "attention_backward dout");
  check_cuda_dtype(out, DType::BF16, "attention_backward out");
  check_cuda_dtype(lse, DType::F32, "attention_backward lse");
  if (q.numel() == 0) return;
  if (cudnn_attention_backward(dq, dk, dv, dout, q, k, v, out, lse)) return;
  Context& ctx = Context::get();
  cudaStream_t s = ctx.stream();
  int64_t rows = int64_t(d.B) * d.T * d.Hq;
  float* Di = static_cast<float*>(ctx.scratch(Scratch::AttnD, size_t(rows) * 4));
  attention_rowdot_kernel<<<grid_for(rows * 32, 256), 256, 0, s>>>(Di, static_cast<const bf16*>(dout.raw()),
                                                                    static_cast<const bf16*>(out.raw()), rows, d.T, d.Hq,
                                                                    d.D);
  CUDA_CHECK_LAUNCH("attention_backward rowdot");
  if (!tiled_head_dim(d.D)) {
    attention_backward_generic(d, dq, dk, dv, dout, q, k, v, lse.f32(), Di);
    return;
  }
  // dQ gathers contributions from every key tile: F32 atomics into dq itself
  // when it is F32, else into a scratch converted afterwards.
  bool direct = dq.dtype() == DType::F32;
  fptr(dq, "attention dq");
  float* dq_acc = direct ? dq.f32() : static_cast<float*>(ctx.scratch(Scratch::AttnDq, size_t(q.numel()) * 4));
  CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, size_t(q.numel()) * 4, s));
  const float* l = lse.f32();
  if (d.D == 64)
    backward_d<64>(d, dq_acc, dk, dv, dout, q, k, v, l, Di);
  else
    backward_d<128>(d, dq_acc, dk, dv, dout, q, k, v, l, Di);
  if (!direct) convert_n(fptr(dq, "attention dq"), FloatPtr{dq_acc, DType::F32}, q.numel());
}

}  // namespace qtrain::cuda
