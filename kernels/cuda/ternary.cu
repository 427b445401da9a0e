// BitNet quantizers on the GPU; references in kernels/cpu/ternary.cpp. The
// same float operations in the same order, so values match the reference
// up to the mean's summation order.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/quant_matmul.h"
#include "kernels/ternary.h"
#include "kernels/quant/decode.h"

namespace qtrain::cuda {
namespace {

__global__ void abs_sum_kernel(double* out, FloatPtr w, int64_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc += fabs(double(w.ld(i)));
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

__global__ void ternary_kernel(FloatPtr out, FloatPtr w, const double* abs_sum, int64_t n, float lambda) {
  const float gamma = fmaxf(float(*abs_sum / double(n)), 1e-5f);
  const float inv = 1.f / gamma;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
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

// A thread per 32-bit word of codes: 16 weights.
template <bool kLevels>
__global__ void unpack_ternary_kernel(int8_t* levels, FloatPtr out, const uint32_t* codes, int64_t rows, int64_t cols,
                                      int64_t row_words, float scale) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= rows * row_words) return;
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

// One block per x row: BitNet's per-token absmax int8 (LLM.int8's row
// quantization at threshold 0, the reference's operations), zero padded to
// ldx, and the sum of the row's levels for the GEMV's code offset.
__global__ void quantize_act_rows_kernel(int8_t* xq, float* xabs, int* xsum, FloatPtr x, int64_t cols, int64_t ldx) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  float m = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, fabsf(x.ld(i * cols + j)));
  m = block_max(m, red);
  const float scale = m > 0.f ? 127.f / m : 0.f;
  float s = 0.f;  // integers below 2^24: exact
  for (int64_t j = threadIdx.x; j < ldx; j += blockDim.x) {
    const int q = j < cols ? __float2int_rn(__fmul_rn(x.ld(i * cols + j), scale)) : 0;
    xq[i * ldx + j] = int8_t(q);
    s += float(q);
  }
  __syncthreads();  // red is reused
  s = block_sum(s, red);
  if (threadIdx.x == 0) xabs[i] = m, xsum[i] = int(s);
}

// y[m, o] for M rows of x, a warp per output row, each lane 64 weights (one
// 16-byte load) at a time. The codes are T + 1, so acc = sum (T + 1) x - sum x;
// (word >> 2g) & 0x03030303 lines codes 4g..4g+3 up with one int8 x word.
template <int M>
__global__ void __launch_bounds__(256) ternary_gemv_kernel(FloatPtr y, const uint4* __restrict__ codes,
                                                           const int8_t* __restrict__ xq, const float* __restrict__ xabs,
                                                           const int* __restrict__ xsum, const float* __restrict__ wabs,
                                                           int64_t rows, int64_t row_vecs, int64_t ldx) {
  const int lane = threadIdx.x % 32;
  const int64_t o = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (o >= rows) return;
  const uint4* wr = codes + o * row_vecs;
  int acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0;
#pragma unroll 2
  for (int64_t j = lane; j < row_vecs; j += 32) {
    const uint4 wv = __ldcs(wr + j);  // read once: stream past the caches
    const uint32_t ws[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const int4* xr = reinterpret_cast<const int4*>(xq + m * ldx) + j * 4;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int4 xv = __ldg(xr + q);
        acc[m] = __dp4a(int(ws[q] & 0x03030303u), xv.x, acc[m]);
        acc[m] = __dp4a(int((ws[q] >> 2) & 0x03030303u), xv.y, acc[m]);
        acc[m] = __dp4a(int((ws[q] >> 4) & 0x03030303u), xv.z, acc[m]);
        acc[m] = __dp4a(int((ws[q] >> 6) & 0x03030303u), xv.w, acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int off = 16; off > 0; off /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  if (lane != 0) return;
  const float wdeq = __fmul_rn(wabs[o], quant::kInt8Inv127);
#pragma unroll
  for (int m = 0; m < M; ++m)
    y.st(m * rows + o, __fmul_rn(__fmul_rn(float(acc[m] - xsum[m]), __fmul_rn(xabs[m], quant::kInt8Inv127)), wdeq));
}

template <int M>
void launch_gemv(FloatPtr y, const TernaryTensor& w, const int8_t* xq, const float* xabs, const int* xsum, int64_t ldx) {
  const int64_t row_vecs = w.codes.size(1) / 16;
  ternary_gemv_kernel<M><<<unsigned((w.rows + 7) / 8), 256, 0, stream()>>>(
      y, static_cast<const uint4*>(w.codes.raw()), xq, xabs, xsum, w.wabs.f32(), w.rows, row_vecs, ldx);
}

}  // namespace

void unpack_ternary(Tensor out, const TernaryTensor& w) {
  const int64_t words = w.rows * (w.codes.size(1) / 4);
  const auto* codes = static_cast<const uint32_t*>(w.codes.raw());
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

void ternary_matmul(Tensor y, Tensor x, const TernaryTensor& w) {
  const int64_t n = x.numel() / w.cols;
  if (n == 0) return;
  const FloatPtr px = fptr(x, "ternary_matmul x"), py = fptr(y, "ternary_matmul y");
  const int64_t rb = w.codes.size(1);
  if (n <= kTernaryGemvMaxRows && rb % 16 == 0) {
    const int64_t ldx = rb * 4;  // the padded row: 4 weights per code byte
    Tensor xq = Tensor::empty({n, ldx}, DType::I8, Device::CUDA);
    Tensor xabs = Tensor::empty({n}, DType::F32, Device::CUDA), xsum = Tensor::empty({n}, DType::I32, Device::CUDA);
    auto* q = static_cast<int8_t*>(xq.raw());
    auto* s = static_cast<int*>(xsum.raw());
    quantize_act_rows_kernel<<<unsigned(n), 256, 0, stream()>>>(q, xabs.f32(), s, px, w.cols, ldx);
    CUDA_CHECK_LAUNCH("ternary_matmul quantize");
    switch (n) {
      case 1: launch_gemv<1>(py, w, q, xabs.f32(), s, ldx); break;
      case 2: launch_gemv<2>(py, w, q, xabs.f32(), s, ldx); break;
      case 3: launch_gemv<3>(py, w, q, xabs.f32(), s, ldx); break;
      case 4: launch_gemv<4>(py, w, q, xabs.f32(), s, ldx); break;
      case 5: launch_gemv<5>(py, w, q, xabs.f32(), s, ldx); break;
      case 6: launch_gemv<6>(py, w, q, xabs.f32(), s, ldx); break;
      case 7: launch_gemv<7>(py, w, q, xabs.f32(), s, ldx); break;
      default: launch_gemv<8>(py, w, q, xabs.f32(), s, ldx); break;
    }
    CUDA_CHECK_LAUNCH("ternary_gemv");
    return;
  }
  // Training shapes: the levels as int8 (1 byte per weight, one matrix at a
  // time), then LLM.int8's int8 tensor-core GEMM at threshold 0.
  Int8Tensor levels{w.rows, w.cols, Tensor::empty({w.rows, w.cols}, DType::I8, Device::CUDA), w.wabs};
  cuda::unpack_ternary(levels.q, w);
  cuda::int8_matmul(y, x, levels, 0.f);
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
