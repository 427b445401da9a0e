// BitNet quantizers on the GPU; references in kernels/cpu/ternary.cpp. The
// same float operations in the same order, so values match the reference
// up to the mean's summation order.
#include <algorithm>
#include <cstdlib>
#include <unordered_map>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/int8_rows.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/ternary_gemm.cuh"
#include "kernels/device.h"
#include "kernels/quant_matmul.h"
#include "kernels/ternary.h"
#include "kernels/quant/decode.h"

namespace qtrain::cuda {
namespace {

__global__ void abs_sum_kernel(double* out, FloatPtr w, int64_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  QT_GRID_STRIDE(i, n)
    acc += fabs(double(w.ld(i)));
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

__global__ void ternary_kernel(FloatPtr out, FloatPtr w, const double* abs_sum, int64_t n, float lambda) {
  const float gamma = fmaxf(float(*abs_sum / double(n)), 1e-5f);
  const float inv = 1.f / gamma;
  QT_GRID_STRIDE(i, n) {
    const float v = w.ld(i);
    const float q = fminf(fmaxf(rintf(v * inv), -1.f), 1.f) / inv;
    out.st(i, (1.f - lambda) * v + lambda * q);  // exact at both ends
  }
}

// One block per row: the absmax, then the row.
__global__ void act_quant_kernel(FloatPtr out, FloatPtr x, int64_t cols, float lambda) {
  __shared__ float shared[32];
  const int64_t base = int64_t(blockIdx.x) * cols;
  float mx = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, fabsf(x.ld(base + c)));
  mx = block_max(mx, shared);
  const float s = 127.f / fmaxf(mx, 1e-5f);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = x.ld(base + c);
    const float q = fminf(fmaxf(rintf(v * s), -128.f), 127.f) / s;
    out.st(base + c, (1.f - lambda) * v + lambda * q);
  }
}

// ---- the stored 2-bit form (kernels/quant/ternary.h) ----

// A 32-bit word of codes (16 weights) per thread and step.
template <bool kLevels>
__global__ void unpack_ternary_kernel(int8_t* levels, FloatPtr out, const uint32_t* codes, int64_t rows, int64_t cols,
                                      int64_t row_words, float scale) {
  QT_GRID_STRIDE(idx, rows * row_words) {
    const int64_t r = idx / row_words, c0 = (idx % row_words) * 16;
    const uint32_t w = codes[idx];
    for (int k = 0; k < 16 && c0 + k < cols; ++k) {
      const int t = int((w >> (8 * (k % 4) + 2 * (k / 4))) & 3u) - 1;
      if constexpr (kLevels)
        levels[r * cols + c0 + k] = int8_t(t);
      else
        out.st(r * cols + c0 + k, float(t) * scale);
    }
  }
}

// Rows of whole words (cols % 16 == 0), int8 levels or BF16 scale * T: a word's 16 weights as one
// 16-byte store (int8) or two (BF16). The scalar kernel above stored each weight on its own (16
// stores of 1-2 bytes a thread, 32 B apart across the warp), which made a 4096 x 4096 unpack cost
// half a BF16 GEMM at M = 8192 and the ternary backward 1.5x the BF16 one (H100, 2026-12-05).
// Byte b of a word holds weights b, b + 4, b + 8, b + 12 (2 bits each, kernels/quant/ternary.h),
// so (word >> 2g) & 0x03030303 is the codes of weights 4g..4g + 3 in byte order.
template <bool kLevels>
__global__ void unpack_ternary_x16_kernel(void* out, const uint32_t* codes, int64_t n, int64_t words_per_row,
                                          int64_t row_words, float scale) {
  const uint32_t neg = __bfloat16_as_ushort(__float2bfloat16_rn(-scale)), pos = __bfloat16_as_ushort(__float2bfloat16_rn(scale));
  const auto level = [&](uint32_t code) { return code == 2u ? pos : code == 0u ? neg : 0u; };  // selects, no local array
  QT_GRID_STRIDE(i, n) {
    const int64_t r = i / words_per_row, c = i - r * words_per_row;  // output word c of row r
    const uint32_t w = __ldg(codes + r * row_words + c);
    uint32_t g[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) g[k] = (w >> (2 * k)) & 0x03030303u;
    if constexpr (kLevels) {
      const uint32_t one = 0x01010101u;  // code - 1 per byte, no borrow between bytes
      reinterpret_cast<uint4*>(out)[i] = make_uint4(__vsub4(g[0], one), __vsub4(g[1], one), __vsub4(g[2], one),
                                                    __vsub4(g[3], one));
    } else {
      uint32_t v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const uint32_t b = g[k / 2] >> (16 * (k % 2));  // weights 2k, 2k + 1 in bytes 0 and 1
        v[k] = level(b & 3u) | level((b >> 8) & 3u) << 16;
      }
      uint4* o = reinterpret_cast<uint4*>(out) + 2 * i;
      o[0] = make_uint4(v[0], v[1], v[2], v[3]);
      o[1] = make_uint4(v[4], v[5], v[6], v[7]);
    }
  }
}

// The decode product y[m, o] = Q8(x[m]) . T[o] for M <= 8 rows of x, in one
// launch. On rows quantized beforehand (ternary_matmul_q8: the SubLN and the
// quantization in one kernel, once for every product reading x) every block
// copies the codes into its shared layout: 4.1 us against 5.6 at 4096 x 4096,
// M = 1 (H200, 2026-12-06). On raw x (ternary_matmul) every block quantizes
// x itself (BitNet's per-token absmax int8: LLM.int8's row quantization at
// threshold 0, the reference's operations) into shared memory, after issuing
// its first weight row's loads, so that the quantization hides under the DRAM
// latency: no second kernel and no global round trip of the int8 x. A warp
// takes a row at a time, each lane 64 weights (one 16-byte load) per step, and
// loads the next row before it reduces this one. The codes are T + 1, so
// acc = sum (T + 1) x - sum x; (word >> 2g) & 0x03030303 lines codes
// 4g..4g+3 up with one int8 x word.
constexpr int kTernaryVecs = 6;  // 16-byte loads in flight per lane: rows up to 12288 weights in one round
constexpr int kXVecs = 6;        // x's BF16 16-byte loads per thread for the in-register quantization (<= 12288 columns)

__device__ __forceinline__ float bf16_at(const uint4& v, int e) {  // element e of 8 packed BF16
  const uint32_t w = e < 2 ? v.x : e < 4 ? v.y : e < 6 ? v.z : v.w;
  return __uint_as_float(e % 2 ? w & 0xFFFF0000u : w << 16);
}

// The shared memory the GEMV's int8 copy of x takes per row of x: whole
// [32 loads][4 words] slot groups (xq_slot's layout), so a row of row_vecs
// loads is rounded up to a multiple of 32 of them.
__host__ __device__ __forceinline__ int64_t xq_row_bytes(int64_t row_vecs) { return (row_vecs + 31) / 32 * 32 * 64; }
// What the GEMV may ask for beyond the opt-in limit's static share (red, xabs, xsum).
size_t gemv_smem_limit() { return Context::get().max_smem_optin() - 4096; }

// x's int8 values in shared memory, ordered as the lanes read them: the 16
// bytes that lane j % 32 needs for word q of its load j sit in one 16-byte
// slot of a [j / 32][q][lane] array, so a warp's 32 reads hit 32 banks.
__device__ __forceinline__ int64_t xq_slot(int64_t i) {  // byte offset of x element i in a row
  const int64_t j = i >> 6, q = (i >> 4) & 3;
  return (((j >> 5) * 4 + q) * 32 + (j & 31)) * 16 + (i & 15);
}

template <int M>
__device__ __forceinline__ void ternary_dot(int (&acc)[M], const uint4& wv, const int4* xs, int64_t j, int64_t ldx16) {
  const uint32_t ws[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const int4* xr = xs + m * ldx16 + ((j >> 5) * 4) * 32 + (j & 31);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int4 xv = xr[q * 32];
      acc[m] = __dp4a(int(ws[q] & 0x03030303u), xv.x, acc[m]);
      acc[m] = __dp4a(int((ws[q] >> 2) & 0x03030303u), xv.y, acc[m]);
      acc[m] = __dp4a(int((ws[q] >> 4) & 0x03030303u), xv.z, acc[m]);
      acc[m] = __dp4a(int((ws[q] >> 6) & 0x03030303u), xv.w, acc[m]);
    }
  }
}

// x already quantized (quantize_act_q8): its codes, absmax and sum of codes.
struct Q8In {
  const int8_t* q;
  const float* absmax;
  const int* sum;
  bool vec;  // rows of whole, aligned 16-byte chunks
};

// kQ8: x comes as Q8In (the prologue copies its codes into the shared layout);
// otherwise x (any float dtype) is quantized by every block.
template <int M, bool kQ8>
__global__ void __launch_bounds__(256) ternary_gemv_kernel(FloatPtr y, const uint4* __restrict__ codes, FloatPtr x,
                                                           Q8In xq8, const float* __restrict__ wabs, int64_t rows,
                                                           int64_t cols, int64_t row_vecs) {
  extern __shared__ int4 xs[];  // [M][ldx] int8 in xq_slot order
  __shared__ float red[32], xabs[M];
  __shared__ int xsum[M];
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  // ldx: x's padded length (4 weights per code byte); lds: its stride in shared memory.
  const int64_t ldx = row_vecs * 64, lds = xq_row_bytes(row_vecs), stride = int64_t(gridDim.x) * warps;
  int64_t o = int64_t(blockIdx.x) * warps + (threadIdx.x >> 5);
  uint4 wv[kTernaryVecs];
  const auto load = [&](int64_t row, int64_t j0) {
#pragma unroll
    for (int v = 0; v < kTernaryVecs; ++v) {
      const int64_t j = j0 + lane + 32 * v;
      wv[v] = row < rows && j < row_vecs ? __ldcs(codes + row * row_vecs + j) : make_uint4(0, 0, 0, 0);  // read once
    }
  };
  // Launched with PDL (launch_gemv), this runs while the kernel before it finishes, up to
  // pdl_wait(): the first row's weight loads touch only the frozen codes.
  pdl_launch_dependents();
  load(o, 0);
  pdl_wait();  // x is the previous kernel's output, and y may be what it reads
  int8_t* xq = reinterpret_cast<int8_t*>(xs);
  if constexpr (kQ8) {
    // 16 codes (one slot) a thread and step, zeros past the row (the padding to ldx).
    for (int m = 0; m < M; ++m)
      for (int64_t i = int64_t(threadIdx.x) * 16; i < ldx; i += int64_t(blockDim.x) * 16) {
        const int8_t* src = xq8.q + m * cols + i;
        int4 v = make_int4(0, 0, 0, 0);
        if (xq8.vec && i + 16 <= cols) {
          v = __ldg(reinterpret_cast<const int4*>(src));
        } else {
          uint32_t b[4] = {0u, 0u, 0u, 0u};
          for (int e = 0; e < 16 && i + e < cols; ++e) b[e / 4] |= uint32_t(uint8_t(src[e])) << (8 * (e % 4));
          v = make_int4(int(b[0]), int(b[1]), int(b[2]), int(b[3]));
        }
        *reinterpret_cast<int4*>(xq + m * lds + xq_slot(i)) = v;
      }
    if (threadIdx.x < M) xabs[threadIdx.x] = xq8.absmax[threadIdx.x], xsum[threadIdx.x] = xq8.sum[threadIdx.x];
  }
  for (int m = 0; m < (kQ8 ? 0 : M); ++m) {
    float mx = 0.f, s = 0.f;  // s: integers below 2^24, exact
    if (x.t == DType::BF16 && cols % 8 == 0 && cols <= 8 * kXVecs * int64_t(blockDim.x)) {
      // The decode case: each thread's x values arrive in one round of 16-byte loads and stay in
      // registers for the quantization (a load per element through FloatPtr, twice, was half the
      // kernel's instructions and a chain of L2 round trips).
      uint4 xr[kXVecs];
#pragma unroll
      for (int v = 0; v < kXVecs; ++v) {
        const int64_t i = (threadIdx.x + int64_t(v) * blockDim.x) * 8;
        xr[v] = i < cols ? __ldg(reinterpret_cast<const uint4*>(static_cast<const bf16*>(x.p) + m * cols + i))
                         : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int e = 0; e < 8; ++e) mx = fmaxf(mx, fabsf(bf16_at(xr[v], e)));
      }
      mx = block_max(mx, red);
      const float scale = mx > 0.f ? 127.f / mx : 0.f;
#pragma unroll
      for (int v = 0; v < kXVecs; ++v) {
        const int64_t i = (threadIdx.x + int64_t(v) * blockDim.x) * 8;
        if (i >= cols) break;
        uint32_t packed[2] = {0u, 0u};
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const int q = __float2int_rn(__fmul_rn(bf16_at(xr[v], e), scale));
          packed[e / 4] |= uint32_t(uint8_t(int8_t(q))) << (8 * (e % 4));
          s += float(q);
        }
        *reinterpret_cast<uint2*>(xq + m * lds + xq_slot(i)) = make_uint2(packed[0], packed[1]);  // 8 bytes, one slot half
      }
      for (int64_t j = cols + threadIdx.x; j < ldx; j += blockDim.x) xq[m * lds + xq_slot(j)] = 0;  // the padding
    } else {
#pragma unroll 8
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, fabsf(x.ld(m * cols + j)));
      mx = block_max(mx, red);
      const float scale = mx > 0.f ? 127.f / mx : 0.f;
      for (int64_t j = threadIdx.x; j < ldx; j += blockDim.x) {  // zero padded to ldx
        const int q = j < cols ? __float2int_rn(__fmul_rn(x.ld(m * cols + j), scale)) : 0;
        xq[m * lds + xq_slot(j)] = int8_t(q);
        s += float(q);
      }
    }
    s = block_sum(s, red);
    if (threadIdx.x == 0) xabs[m] = mx, xsum[m] = int(s);
  }
  __syncthreads();
  for (; o < rows; o += stride) {  // warp-uniform
    int acc[M];
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = 0;
    for (int64_t j0 = 0; j0 < row_vecs; j0 += 32 * kTernaryVecs) {
      if (j0 > 0) load(o, j0);  // rows over 12288 weights: later rounds
#pragma unroll
      for (int v = 0; v < kTernaryVecs; ++v) {
        const int64_t j = j0 + lane + 32 * v;
        if (j < row_vecs) ternary_dot<M>(acc, wv[v], xs, j, lds / 16);
      }
    }
    load(o + stride, 0);  // the next row's loads go out before this one's reduction
#pragma unroll
    for (int m = 0; m < M; ++m)
      for (int off = 16; off > 0; off /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
    if (lane == 0) {
      const float wdeq = __fmul_rn(wabs[o], quant::kInt8Inv127);
#pragma unroll
      for (int m = 0; m < M; ++m)
        y.st(m * rows + o, __fmul_rn(__fmul_rn(float(acc[m] - xsum[m]), __fmul_rn(xabs[m], quant::kInt8Inv127)), wdeq));
    }
  }
}

template <int M, bool kQ8>
void launch_gemv(FloatPtr y, FloatPtr x, Q8In xq8, const TernaryTensor& w) {
  const auto kernel = ternary_gemv_kernel<M, kQ8>;
  const int64_t row_vecs = w.codes.size(1) / 16;
  const size_t smem = size_t(M) * size_t(xq_row_bytes(row_vecs));
  static bool attrs = false;  // x's int8 copy outgrows the default 48 KB for long rows at M = 8
  if (!attrs) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(gemv_smem_limit())));
    attrs = true;
  }
  // Persistent warps: as many blocks as fit at once (one wave), each preparing x once for many rows.
  // How many fit depends on the shared memory, which differs per weight shape: asked once per size.
  static std::unordered_map<size_t, int> per_sm_of;
  auto [it, fresh] = per_sm_of.try_emplace(smem, 0);
  if (fresh) CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&it->second, kernel, 256, smem));
  const int64_t blocks = std::min<int64_t>((w.rows + 7) / 8, int64_t(Context::get().sm_count()) * std::max(it->second, 1));
  // One wave (blocks = what fits), so a dependent launched early holds no resources this grid waits for.
  launch_pdl(decode_pdl(), kernel, unsigned(blocks), 256u, smem, y, static_cast<const uint4*>(w.codes.raw()), x, xq8,
             w.wabs.f32(), w.rows, w.cols, row_vecs);
  CUDA_CHECK_LAUNCH("ternary_gemv");
}

// Whether n rows of x take the GEMV: decode sizes, rows of whole 16-byte code loads, x's int8 copy
// within the shared memory.
bool gemv_takes(int64_t n, const TernaryTensor& w) {
  const int64_t rb = w.codes.size(1);
  return n <= kTernaryGemvMaxRows && rb % 16 == 0 && size_t(n) * size_t(xq_row_bytes(rb / 16)) <= gemv_smem_limit();
}

template <bool kQ8>
void gemv(int64_t n, FloatPtr y, FloatPtr x, Q8In xq8, const TernaryTensor& w) {
  switch (n) {
    case 1: return launch_gemv<1, kQ8>(y, x, xq8, w);
    case 2: return launch_gemv<2, kQ8>(y, x, xq8, w);
    case 3: return launch_gemv<3, kQ8>(y, x, xq8, w);
    case 4: return launch_gemv<4, kQ8>(y, x, xq8, w);
    case 5: return launch_gemv<5, kQ8>(y, x, xq8, w);
    case 6: return launch_gemv<6, kQ8>(y, x, xq8, w);
    case 7: return launch_gemv<7, kQ8>(y, x, xq8, w);
    default: return launch_gemv<8, kQ8>(y, x, xq8, w);
  }
}

}  // namespace

void unpack_ternary(Tensor out, const TernaryTensor& w) {
  const int64_t words = w.rows * (w.codes.size(1) / 4);
  const auto* codes = static_cast<const uint32_t*>(w.codes.raw());
  if (w.cols % 16 == 0 && reinterpret_cast<uintptr_t>(out.raw()) % 16 == 0 &&
      (out.dtype() == DType::I8 || out.dtype() == DType::BF16)) {
    const int64_t row_words = w.codes.size(1) / 4, n = w.rows * (w.cols / 16);
    if (out.dtype() == DType::I8)
      unpack_ternary_x16_kernel<true><<<grid_for(n, 256), 256, 0, stream()>>>(out.raw(), codes, n, w.cols / 16,
                                                                              row_words, w.scale);
    else
      unpack_ternary_x16_kernel<false><<<grid_for(n, 256), 256, 0, stream()>>>(out.raw(), codes, n, w.cols / 16,
                                                                               row_words, w.scale);
    CUDA_CHECK_LAUNCH("unpack_ternary");
    return;
  }
  if (out.dtype() == DType::I8)
    unpack_ternary_kernel<true><<<grid_for(words, 256), 256, 0, stream()>>>(static_cast<int8_t*>(out.raw()), FloatPtr{},
                                                                            codes, w.rows, w.cols, w.codes.size(1) / 4,
                                                                            w.scale);
  else
    unpack_ternary_kernel<false><<<grid_for(words, 256), 256, 0, stream()>>>(nullptr, fptr(out, "unpack_ternary out"),
                                                                             codes, w.rows, w.cols,
                                                                             w.codes.size(1) / 4, w.scale);
  CUDA_CHECK_LAUNCH("unpack_ternary");
}

void ternary_matmul_q8(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  const int64_t n = act.rows();
  if (n == 0) return;
  const FloatPtr py = fptr(y, "ternary_matmul_q8 y");
  if (gemv_takes(n, w)) {
    const bool vec = w.cols % 16 == 0 && reinterpret_cast<uintptr_t>(act.q.raw()) % 16 == 0;
    gemv<true>(n, py, FloatPtr{}, Q8In{static_cast<const int8_t*>(act.q.raw()), act.absmax.f32(),
                                       static_cast<const int*>(act.sum.raw()), vec}, w);
    return;
  }
  // Training shapes with a short reduction (SmolLM2): one fused kernel.
  // QT_W2A8_FUSED=0 keeps the general path (same values; for A/B runs and the test that compares them).
  const char* fused = std::getenv("QT_W2A8_FUSED");
  if ((fused == nullptr || fused[0] != '0') && ternary_gemm_q8(y, act, w)) return;
  // Otherwise the levels as int8 (1 byte per weight, one matrix at a
  // time), then LLM.int8's int8 tensor-core GEMM and epilogue.
  Int8Tensor levels{w.rows, w.cols, Tensor::empty({w.rows, w.cols}, DType::I8, Device::CUDA), w.wabs};
  cuda::unpack_ternary(levels.q, w);
  int8_rows_matmul(py, static_cast<const int8_t*>(act.q.raw()), act.absmax.f32(), n, levels);
}

void ternary_matmul(Tensor y, Tensor x, const TernaryTensor& w) {
  const int64_t n = x.numel() / w.cols;
  if (n == 0) return;
  if (gemv_takes(n, w)) {  // decode: one launch, every block quantizing x itself
    gemv<false>(n, fptr(y, "ternary_matmul y"), fptr(x, "ternary_matmul x"), Q8In{}, w);
    return;
  }
  const Q8Rows act = Q8Rows::empty(n, w.cols, Device::CUDA);
  cuda::quantize_act_q8(act, x.view({n, w.cols}), false);
  cuda::ternary_matmul_q8(y, act, w);
}

void ternary_fake_quant(Tensor out, Tensor w, float lambda) {
  const int64_t n = w.numel();
  Tensor sum = Tensor::zeros({2}, DType::F32, Device::CUDA);  // one double
  abs_sum_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(static_cast<double*>(sum.raw()), fptr(w, "ternary w"), n);
  CUDA_CHECK_LAUNCH("ternary abs_sum");
  ternary_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "ternary out"), fptr(w, "ternary w"),
                                                         static_cast<const double*>(sum.raw()), n, lambda);
  CUDA_CHECK_LAUNCH("ternary_fake_quant");
}

void int8_act_fake_quant(Tensor out, Tensor x, float lambda) {
  const int64_t cols = x.size(-1), rows = cols ? x.numel() / cols : 0;
  if (rows == 0) return;
  act_quant_kernel<<<unsigned(rows), 256, 0, stream()>>>(fptr(out, "act_quant out"), fptr(x, "act_quant x"), cols, lambda);
  CUDA_CHECK_LAUNCH("int8_act_fake_quant");
}

}  // namespace qtrain::cuda
