// The W2A8 product (kernels/ternary.h) at training shapes with a reduction of
// up to kTernaryGemmMaxCols (SmolLM2's 576 and 1536), in one launch on Hopper's
// warpgroup MMA (wgmma, sm_90a), both operands in shared memory.
//
// Why: the general path (unpack the codes to int8, cuBLASLt's int8 GEMM into an
// int32 matrix, then LLM.int8's epilogue) moves the int32 product through
// memory twice and costs five launches: 3.5-4.8x a cuBLASLt BF16 GEMM of the
// same shape at K = 576 (H100, 2026-12-05). The mma.sync kernel that replaced
// it there (x quantized by a kernel of its own, then m16n8k32) still took 47 /
// 65 / 110 us against BF16's 12 / 25 / 21 at SmolLM2's q/o, gate/up and down
// shapes (M = 8192): Hopper runs mma.sync's int8 at about the A100's rate.
//
// x comes quantized (quantize_act_q8, kernels/cuda/ternary_act.cu: int8
// codes, the row's absmax and sum of codes), fused there with the SubLN before
// it, once for every product reading it: quantizing inside the GEMM blocks
// instead, every column split of a row block quantizing its rows again,
// measured 45 / 76 / 75 us against 28 / 52 / 65 for a separate quantization
// kernel and this one (H100, 2026-12-06). A
// block is two warpgroups and 64 x rows (tokens), their int8 codes whole in
// shared memory (cp.async) in the wgmma core-matrix layout (8 rows x 16 bytes,
// K-adjacent core matrices 128 bytes apart):
//   main loop: each warpgroup takes 64 output channels at a time. Their 2-bit
//             codes come into registers one tile ahead (a 16-byte load a
//             thread per 128 columns) and are decoded, 128 columns at a time,
//             into a ring of kAStages shared int8 stages: the codes are c = T +
//             1, and (word >> 2t) & 0x03030303 is weights 4t..4t+3 of a
//             16-weight word in byte order, so a word is one 16-byte
//             core-matrix row. m64n64k32 wgmmas take x as A and the stage as B
//             while the next stage is decoded; sum x T = sum x c - sum x,
//             exact in int32;
//   epilogue: D is [token, channel], a thread's pairs of adjacent channels,
//             so the LLM.int8 rescale (same F32 operations in the same order:
//             y equals the general path bit for bit) stores straight from the
//             registers as BF16 or F32 pairs.
// The int32 product never leaves the chip.
//
// Operands in shared memory, not A in registers: a register operand is read
// after the wgmma issues, and a first version that decoded the weights into A
// registers produced wrong tiles when several warpgroups shared an SM.
#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include <unordered_map>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/ternary_gemm.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/quant/decode.h"

namespace qtrain::cuda {
namespace {

using quant::kInt8Inv127;

constexpr int kThreads = 256, kTokens = 64, kChannels = 64, kAK = 128, kAStages = 3;
constexpr int kStageBytes = kChannels * kAK;                           // 8 KB: 8 row groups x 8 core matrices
constexpr int kMaxChunks = int(kTernaryGemmMaxCols + kAK - 1) / kAK;  // codes registers a thread holds per tile

size_t smem_bytes(int K) { return size_t(kTokens) * K + size_t(2) * kAStages * kStageBytes + size_t(kTokens) * 8; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}

template <class TY>
__global__ void __launch_bounds__(kThreads, 2)
    ternary_wgmma_kernel(TY* __restrict__ y, const int8_t* __restrict__ xq, const int* __restrict__ xsum,
                         const float* __restrict__ xabs, const uint8_t* __restrict__ codes,
                         const float* __restrict__ wabs, int N, int K, int out, int ctiles) {
#if QT_HAS_WGMMA
  extern __shared__ __align__(128) uint8_t smem[];
  const int kc16 = K / 16, nchunks = (K + kAK - 1) / kAK;
  int8_t* xs = reinterpret_cast<int8_t*>(smem);
  int* rowsum = reinterpret_cast<int*>(smem + size_t(kTokens) * K + 2 * kAStages * kStageBytes);
  float* xscale = reinterpret_cast<float*>(rowsum + kTokens);
  const int tid = threadIdx.x, wg = tid >> 7, wtid = tid & 127, warp = wtid >> 5, lane = tid & 31;
  uint8_t* astage = smem + size_t(kTokens) * K + wg * kAStages * kStageBytes;
  const int tok0 = blockIdx.x * kTokens;
  const int64_t rb = K / 4;

  // The codes this thread decodes: row dr of a tile, columns chunk * 128 + dh * 64 .. + 63. Eight
  // lanes in a row take eight rows of one core-matrix column: conflict-free 16-byte stores.
  const int dr = (wtid & 7) | ((wtid >> 4) << 3), dh = (wtid >> 3) & 1;
  uint4 pre[kMaxChunks];
  auto load_codes = [&](int ct) {
    const int64_t row = min(ct * kChannels + dr, out - 1);  // past the last row: a valid row, never stored
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c)
      if (c < nchunks && c * kAK + dh * 64 < K)
        pre[c] = __ldg(reinterpret_cast<const uint4*>(codes + row * rb + (c * kAK + dh * 64) / 4));
  };
  const int tstep = 2 * int(gridDim.y);
  int ct = int(blockIdx.y) * 2 + wg;

  // The block's x codes (rows past N repeat row N - 1; never stored) and each warpgroup's first
  // tile of codes, in flight together.
  for (int i = tid; i < kTokens * kc16; i += kThreads) {
    const int r = i / kc16, kc = i % kc16;
    cp_async16(xs + ((r >> 3) * kc16 + kc) * 128 + (r & 7) * 16, xq + int64_t(min(tok0 + r, N - 1)) * K + kc * 16);
  }
  asm volatile("cp.async.commit_group;\n" ::);
  if (tid < kTokens) {
    const int r = min(tok0 + tid, N - 1);
    rowsum[tid] = xsum[r];
    xscale[tid] = __fmul_rn(xabs[r], kInt8Inv127);
  }
  if (ct < ctiles) load_codes(ct);
  asm volatile("cp.async.wait_group 0;\n" ::);
  fence_proxy_async_smem();  // x's codes, written by cp.async, read by wgmma
  __syncthreads();

  const uint64_t xdesc = wgmma_desc(xs, 128, uint32_t(kc16) * 128);
  const uint64_t wdesc = wgmma_desc(astage, 128, 8 * 128);
  const int g = lane >> 2, t4 = lane & 3;
  for (; ct < ctiles; ct += tstep) {
    int acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0;
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) {
      if (c >= nchunks) break;
      const int stage = c % kAStages;
      // Stage reuse: the commit of chunk c - 1 was followed by wait<kAStages - 1>, so chunk
      // c - kAStages's products (the last readers of this stage) are done.
      if (c * kAK + dh * 64 < K) {
        const uint32_t m = 0x03030303u, w[4] = {pre[c].x, pre[c].y, pre[c].z, pre[c].w};
#pragma unroll
        for (int j = 0; j < 4; ++j)
          *reinterpret_cast<uint4*>(astage + stage * kStageBytes + ((dr >> 3) * 8 + dh * 4 + j) * 128 + (dr & 7) * 16) =
              make_uint4(w[j] & m, (w[j] >> 2) & m, (w[j] >> 4) & m, (w[j] >> 6) & m);
      }
      fence_proxy_async_smem();
      asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory");  // the stage whole before the group's wgmma
      wgmma_fence();
      const int steps = min(kAK, K - c * kAK) / 32;
#pragma unroll
      for (int kk = 0; kk < kAK / 32; ++kk)
        if (kk < steps)
          wgmma_s8_n64(acc, xdesc + uint64_t((c * 8 + kk * 2) * 8), wdesc + uint64_t((stage * kStageBytes + kk * 256) >> 4));
      wgmma_commit();
      wgmma_wait<kAStages - 1>();
    }
    if (ct + tstep < ctiles) load_codes(ct + tstep);  // the next tile's codes, under this tile's last products
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < 32; ++i) wgmma_pin(acc[i]);

    // Epilogue: acc[4j + 2h + e] = token 16 warp + g + 8h, channel 8j + 2 t4 + e.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int tk = 16 * warp + g + 8 * h;
      if (tok0 + tk >= N) continue;
      const int rs = rowsum[tk];
      const float xs_r = xscale[tk];
      TY* yr = y + int64_t(tok0 + tk) * out;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int ch = ct * kChannels + 8 * j + 2 * t4;
        if (ch >= out) continue;  // out % 8 == 0: ch + 1 < out too
        const float wd0 = __fmul_rn(__ldg(wabs + ch), kInt8Inv127), wd1 = __fmul_rn(__ldg(wabs + ch + 1), kInt8Inv127);
        const float v0 = __fmul_rn(__fmul_rn(float(acc[4 * j + 2 * h] - rs), xs_r), wd0);
        const float v1 = __fmul_rn(__fmul_rn(float(acc[4 * j + 2 * h + 1] - rs), xs_r), wd1);
        if constexpr (std::is_same_v<TY, bf16>)
          *reinterpret_cast<__nv_bfloat162*>(yr + ch) = __floats2bfloat162_rn(v0, v1);
        else
          *reinterpret_cast<float2*>(yr + ch) = make_float2(v0, v1);
      }
    }
  }
#endif
}

// Whether this build carries the kernel's sm_90a code and the GPU runs it.
template <class TY>
bool kernel_runs_here() {
  static const bool ok = [] {
    cudaFuncAttributes a{};
    return cudaFuncGetAttributes(&a, ternary_wgmma_kernel<TY>) == cudaSuccess && a.binaryVersion == 90;
  }();
  return ok;
}

template <class TY>
void launch(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  const int K = int(w.cols), out = int(w.rows), N = int(act.rows());
  auto* kernel = ternary_wgmma_kernel<TY>;
  const size_t smem = smem_bytes(K);
  static std::unordered_map<int, int> per_sm;  // blocks per SM by K (shared memory decides)
  int& bps = per_sm[K];
  if (bps == 0) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes(kTernaryGemmMaxCols))));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps, kernel, kThreads, smem));
    bps = std::max(bps, 1);
  }
  const int tokblocks = (N + kTokens - 1) / kTokens, ctiles = (out + kChannels - 1) / kChannels;
  // Channel tiles split over blockIdx.y (two warpgroups a block) as far as one wave of blocks holds
  // them: a second, partial wave cost more than the splits saved (2 splits at 576 x 576, M = 8192:
  // 25 us; 3: 29 us, H100).
  int splits = int(int64_t(Context::get().sm_count()) * bps / tokblocks);
  if (const char* e = std::getenv("QT_W2A8_SPLITS")) splits = std::atoi(e);  // benchmarking only
  splits = std::clamp(splits, 1, (ctiles + 1) / 2);
  kernel<<<dim3(unsigned(tokblocks), unsigned(splits)), kThreads, smem, stream()>>>(
      static_cast<TY*>(y.raw()), static_cast<const int8_t*>(act.q.raw()), static_cast<const int*>(act.sum.raw()),
      act.absmax.f32(), static_cast<const uint8_t*>(w.codes.raw()), w.wabs.f32(), N, K, out, ctiles);
  CUDA_CHECK_LAUNCH("ternary_gemm");
}

}  // namespace

bool ternary_gemm_q8(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  const int64_t K = w.cols, out = w.rows, n = act.rows();
  const bool y_ok = y.dtype() == DType::BF16 || y.dtype() == DType::F32;
  if (!y_ok || !ternary_gemm_fused_shape(out, K) || n > (int64_t(1) << 30) || out * w.codes.size(1) > (int64_t(1) << 31) ||
      w.codes.size(1) != K / 4 || reinterpret_cast<uintptr_t>(act.q.raw()) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(y.raw()) % 8 != 0 || reinterpret_cast<uintptr_t>(w.codes.raw()) % 16 != 0 ||
      smem_bytes(int(K)) > Context::get().max_smem_optin())
    return false;
  if (y.dtype() == DType::BF16) {
    if (!kernel_runs_here<bf16>()) return false;
    launch<bf16>(y, act, w);
  } else {
    if (!kernel_runs_here<float>()) return false;
    launch<float>(y, act, w);
  }
  return true;
}

}  // namespace qtrain::cuda
