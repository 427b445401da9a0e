// The W2A8 product (kernels/ternary.h) at training shapes with a short
// reduction (K <= kTernaryGemmMaxCols: SmolLM2's 576), in two launches.
//
// Why: the general path (unpack the codes to int8, cuBLASLt's int8 GEMM into an
// int32 matrix, then LLM.int8's epilogue) moves the int32 product through
// memory twice - 8 bytes per output against the 2 of a BF16 GEMM's - and costs
// five launches; at K = 576 that was 3.5-4.8x a cuBLASLt BF16 GEMM of the same
// shape (H100, 2026-12-05). Here the int32 product never leaves the chip:
//   quantize: a warp per x row, int8 codes exactly as quantize_rows_kernel
//             (int8_matmul.cu) makes them, with the row's sum of codes (one
//             memory latency per row, spread over the whole GPU: quantizing
//             inside the GEMM's blocks, 8 rows a warp one after another, was
//             slower than the general path, 53-133 us at SmolLM2's shapes);
//   prologue: the GEMM block's 64 rows of codes into shared memory (cp.async);
//   main loop: 128 output rows at a time, their 2-bit codes streamed through
//             a cp.async ring in 64-column slices; mma.sync m16n8k32 s8 takes
//             the codes c = T + 1 straight from the packed word (one shift and
//             one mask per register: weights 4t..4t+3 of a 16-weight word are
//             bits 2t.. of its four bytes, kernels/quant/ternary.h), so
//             sum x T = sum x c - sum x (exact in int32);
//   epilogue: the LLM.int8 rescale with the same F32 operations in the same
//             order, so that y equals the general path's bit for bit.
// Each warp owns a 32 x 32 tile (2 x 4 mma tiles); 8 warps = 64 x rows x 128
// outputs.
//
// Measured (H100, M = 8192, bench_ternary_kernels, 2026-12-06): 47 / 65 us at
// 576x576 / 1536x576 against 53 / 87 for the general path (BF16 cuBLASLt: 12 /
// 25), but 112 against 78 at K = 1536: on Hopper mma.sync runs int8 at about
// the rate the A100 had, well under the wgmma kernels cuBLASLt picks, so the
// saving of the int32 round trip is eaten once K grows. Hence the cap. A wgmma
// (or CUTLASS) kernel with this epilogue is what would take the SmolLM2 shapes
// to the BF16 time.
#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include <unordered_map>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/ternary_gemm.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/quant/decode.h"

namespace qtrain::cuda {
namespace {

using quant::kInt8Inv127;

constexpr int kBM = 64, kBN = 128, kBK = 64, kStages = 6, kThreads = 256;
constexpr int kSliceBytes = kBN * kBK / 4;  // one ring slot: 128 rows x 16 bytes of codes

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Eight x values from element i on: BF16 as one 16-byte load, F32 as two.
template <class TX>
__device__ __forceinline__ void load8(const TX* x, int64_t i, float (&v)[8]) {
  if constexpr (std::is_same_v<TX, bf16>) {
    bf16x8_to_f32(*reinterpret_cast<const int4*>(x + i), v);
  } else {
    const float4 a = *reinterpret_cast<const float4*>(x + i), b = *reinterpret_cast<const float4*>(x + i + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
}

// One warp per x row: its absmax, then int8 codes rn(x * 127 / absmax) (quantize_rows_kernel's F32
// operations), the sum of the codes and absmax / 127. A lane's loads of the row are all issued before
// any is used (rows up to kTernaryGemmMaxCols: 3 loads of 8 values per lane), so a row costs one
// memory latency; x is read once (the row stays in registers).
template <class TX>
__global__ void w2a8_quantize_kernel(int8_t* __restrict__ xq, int* __restrict__ rowsum, float* __restrict__ xscale,
                                     const TX* __restrict__ x, int N, int K) {
  constexpr int kLoads = int(kTernaryGemmMaxCols) / 256;  // 8 elements per lane per load
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= N) return;
  const TX* xr = x + r * K;
  float v[kLoads][8];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int c = (i * 32 + lane) * 8;
    if (c < K) load8(xr, c, v[i]);
  }
  float m = 0.f;
#pragma unroll
  for (int i = 0; i < kLoads; ++i)
    if ((i * 32 + lane) * 8 < K)
#pragma unroll
      for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(v[i][e]));
  m = warp_max(m);
  const float scale = m > 0.f ? 127.f / m : 0.f;
  int sum = 0;
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int c = (i * 32 + lane) * 8;
    if (c >= K) continue;
    uint32_t packed[2] = {0, 0};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int q = __float2int_rn(__fmul_rn(v[i][e], scale));
      sum += q;
      packed[e / 4] |= uint32_t(q & 0xFF) << (8 * (e % 4));
    }
    *reinterpret_cast<uint2*>(xq + r * K + c) = make_uint2(packed[0], packed[1]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) rowsum[r] = sum, xscale[r] = __fmul_rn(m, kInt8Inv127);
}

template <class TY>
__global__ void __launch_bounds__(kThreads) ternary_gemm_kernel(TY* __restrict__ y, const int8_t* __restrict__ xq,
                                                                 const int* __restrict__ xsum,
                                                                 const float* __restrict__ xsc,
                                                                 const uint8_t* __restrict__ codes,
                                                                 const float* __restrict__ wabs, int N, int K,
                                                                 int out, int chunks) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int xstride = K + 16;  // bytes; K % 64 == 0, so a row is 4 words mod 8: ldmatrix without bank conflicts
  int8_t* xs = reinterpret_cast<int8_t*>(smem);
  uint8_t* ring = smem + kBM * xstride;
  int* rowsum = reinterpret_cast<int*>(ring + kStages * kSliceBytes);
  float* xscale = reinterpret_cast<float*>(rowsum + kBM);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = blockIdx.x * kBM;
  const int ks_per_chunk = K / kBK;
  const int my_chunks = (chunks - int(blockIdx.y) + int(gridDim.y) - 1) / int(gridDim.y);
  const int tiles = my_chunks * ks_per_chunk;
  const int64_t rb = K / 4;  // code bytes per weight row

  // The block's 64 rows of int8 codes, one cp.async group (rows past N repeat row N - 1: their
  // outputs are never stored).
  for (int i = tid; i < kBM * (K / 16); i += kThreads) {
    const int r = i / (K / 16), c = (i % (K / 16)) * 16;
    cp_async16(xs + r * xstride + c, xq + int64_t(min(m0 + r, N - 1)) * K + c);
  }
  if (tid < kBM) {
    const int r = min(m0 + tid, N - 1);
    rowsum[tid] = xsum[r];
    xscale[tid] = xsc[r];
  }
  cp_async_commit();

  // Slice t of this block's sequence: chunk blockIdx.y + (t / ks) * gridDim.y, columns (t % ks) * 64.
  auto issue = [&](int t) {
    if (t < tiles && tid < kBN) {
      const int n0 = (int(blockIdx.y) + (t / ks_per_chunk) * int(gridDim.y)) * kBN;
      const int row = min(n0 + tid, out - 1);  // past the last row: a valid row, its outputs never stored
      cp_async16(ring + (t % kStages) * kSliceBytes + tid * 16, codes + row * rb + (t % ks_per_chunk) * (kBK / 4));
    }
    cp_async_commit();  // empty groups keep wait_group's count in step
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);

  const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
  const int t4 = lane & 3, shift = 2 * t4;
  // ldmatrix.x4 rows: lanes 0-15 rows 0-15 at byte 0, lanes 16-31 the same rows at byte 16.
  const int8_t* a_base = xs + (wm + (lane & 15)) * xstride + (lane >> 4) * 16;
  int acc[2][4][4] = {};

  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // slice t landed for every thread; slot (t - 1) % kStages is free again
    issue(t + kStages - 1);
    const uint8_t* slot = ring + (t % kStages) * kSliceBytes;
    const int k0 = (t % ks_per_chunk) * kBK;
    uint4 bq[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) bq[j] = *reinterpret_cast<const uint4*>(slot + (wn + j * 8 + (lane >> 2)) * 16);
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) ldmatrix_x4(a[i], a_base + i * 16 * xstride + k0 + kk * 32);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t w0 = kk == 0 ? bq[j].x : bq[j].z, w1 = kk == 0 ? bq[j].y : bq[j].w;
        const uint32_t b0 = (w0 >> shift) & 0x03030303u, b1 = (w1 >> shift) & 0x03030303u;
#pragma unroll
        for (int i = 0; i < 2; ++i) mma_s8(acc[i][j], a[i], b0, b1);
      }
    }
    if ((t + 1) % ks_per_chunk != 0) continue;
    // Epilogue of this 64 x 128 tile: D rows lane / 4 (+ 8), columns 2 (lane % 4) (+ 1).
    const int n0 = (int(blockIdx.y) + (t / ks_per_chunk) * int(gridDim.y)) * kBN;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = n0 + wn + j * 8 + 2 * t4;
      if (c >= out) continue;  // out % 8 == 0: c + 1 < out too
      const float wd0 = __fmul_rn(wabs[c], kInt8Inv127), wd1 = __fmul_rn(wabs[c + 1], kInt8Inv127);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = wm + i * 16 + (lane >> 2) + h * 8;
          const int64_t gr = int64_t(m0) + r;
          if (gr < N) {
            const int rs = rowsum[r];
            const float xs_r = xscale[r];
            const float v0 = __fmul_rn(__fmul_rn(float(acc[i][j][2 * h] - rs), xs_r), wd0);
            const float v1 = __fmul_rn(__fmul_rn(float(acc[i][j][2 * h + 1] - rs), xs_r), wd1);
            if constexpr (std::is_same_v<TY, bf16>)
              *reinterpret_cast<__nv_bfloat162*>(y + gr * out + c) = __floats2bfloat162_rn(v0, v1);
            else
              *reinterpret_cast<float2*>(y + gr * out + c) = make_float2(v0, v1);
          }
        }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;
  }
  cp_async_wait<0>();  // no copy may outlive the block
}

size_t smem_bytes(int K) { return size_t(kBM) * (K + 16) + size_t(kStages) * kSliceBytes + kBM * 8; }

template <class TX, class TY>
void launch(Tensor y, Tensor x, const TernaryTensor& w, int N) {
  const int K = int(w.cols), out = int(w.rows);
  Tensor xq = Tensor::empty({int64_t(N), K}, DType::I8, Device::CUDA);
  Tensor xsum = Tensor::empty({int64_t(N)}, DType::I32, Device::CUDA), xsc = Tensor::empty({int64_t(N)}, DType::F32, Device::CUDA);
  w2a8_quantize_kernel<TX><<<unsigned((N + 7) / 8), 256, 0, stream()>>>(
      static_cast<int8_t*>(xq.raw()), static_cast<int*>(xsum.raw()), xsc.f32(), static_cast<const TX*>(x.raw()), N, K);
  CUDA_CHECK_LAUNCH("ternary_gemm quantize");
  auto* kernel = ternary_gemm_kernel<TY>;
  const size_t smem = smem_bytes(K);
  static std::unordered_map<int, int> per_sm;  // blocks per SM by K (shared memory decides)
  int& bps = per_sm[K];
  if (bps == 0) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes(kTernaryGemmMaxCols))));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&bps, kernel, kThreads, smem));
    bps = std::max(bps, 1);
  }
  const int rowblocks = (N + kBM - 1) / kBM, chunks = (out + kBN - 1) / kBN;
  // Column chunks split over blockIdx.y until the grid fills the GPU; every split loads its x rows again.
  int splits = int((int64_t(Context::get().sm_count()) * bps + rowblocks - 1) / rowblocks);
  if (const char* e = std::getenv("QT_W2A8_SPLITS")) splits = std::atoi(e);  // benchmarking only
  splits = std::clamp(splits, 1, chunks);
  kernel<<<dim3(unsigned(rowblocks), unsigned(splits)), kThreads, smem, stream()>>>(
      static_cast<TY*>(y.raw()), static_cast<const int8_t*>(xq.raw()), static_cast<const int*>(xsum.raw()), xsc.f32(),
      static_cast<const uint8_t*>(w.codes.raw()), w.wabs.f32(), N, K, out, chunks);
  CUDA_CHECK_LAUNCH("ternary_gemm");
}

}  // namespace

bool ternary_gemm(Tensor y, Tensor x, const TernaryTensor& w) {
  const int64_t K = w.cols, out = w.rows, n = x.numel() / std::max<int64_t>(K, 1);
  const bool x_ok = x.dtype() == DType::BF16 || x.dtype() == DType::F32;
  const bool y_ok = y.dtype() == DType::BF16 || y.dtype() == DType::F32;
  static_assert(kBK == 64);
  if (!x_ok || !y_ok || !ternary_gemm_fused_shape(out, K) || n > (int64_t(1) << 30) ||
      out * w.codes.size(1) > (int64_t(1) << 31) || w.codes.size(1) != K / 4 ||
      reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0 || reinterpret_cast<uintptr_t>(y.raw()) % 8 != 0 ||
      reinterpret_cast<uintptr_t>(w.codes.raw()) % 16 != 0)
    return false;
  const int N = int(n);
  if (x.dtype() == DType::BF16)
    y.dtype() == DType::BF16 ? launch<bf16, bf16>(y, x, w, N) : launch<bf16, float>(y, x, w, N);
  else
    y.dtype() == DType::BF16 ? launch<float, bf16>(y, x, w, N) : launch<float, float>(y, x, w, N);
  return true;
}

}  // namespace qtrain::cuda
