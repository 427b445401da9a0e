// LLM.int8 forward on the GPU, the CUDA twin of quant::int8_matmul_decomposed
// (kernels/quant/int8.h), with the same quantization and the same F32 math:
//   1. max |x| per column -> the outlier columns (max > threshold), listed in
//      ascending order (one block, a ballot scan: deterministic);
//   2. each x row quantized to int8 over its non-outlier columns (absmax / 127,
//      round half to even; outlier columns become 0);
//   3. int8 x int8 -> int32 on the tensor cores (cuBLASLt, "TN": both operands
//      K-contiguous, as the weight already is), in row chunks so the int32
//      product stays <= 64 MB;
//   4. the epilogue rescales by xabs[i] * wabs[o] / 127^2 and adds the outlier
//      columns in F32 with the dequantized weight, in ascending column order.
// The weight gradient is never needed (frozen base) and the input gradient
// uses the dequantized weight in a BF16 GEMM, as bitsandbytes does.
//
// Roofline: steps 1, 2 and 4 are memory passes (x read ~3x, int32 written and
// read once); the int8 GEMM runs at up to 2x the BF16 tensor-core rate.
#include <spdlog/spdlog.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/matmul.h"
#include "kernels/cuda/gemm_lt.cuh"
#include "kernels/cuda/int8_rows.cuh"
#include "kernels/quant/decode.h"
#include "kernels/quant_matmul.h"

namespace qtrain::cuda {
namespace {

using quant::kInt8Inv127;

// colmax[j] |= max_i |x[i, j]| as float bits: non-negative floats order like their bits.
__global__ void col_absmax_kernel(unsigned* colmax, FloatPtr x, int64_t n, int64_t k) {
  __shared__ float part[8][33];
  const int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;  // block (32, 8)
  float m = 0.f;
  if (j < k)
    for (int64_t i = blockIdx.y * 8 + threadIdx.y; i < n; i += int64_t(gridDim.y) * 8) m = fmaxf(m, fabsf(x.ld(i * k + j)));
  part[threadIdx.y][threadIdx.x] = m;
  __syncthreads();
  if (threadIdx.y == 0 && j < k) {
#pragma unroll
    for (int r = 1; r < 8; ++r) m = fmaxf(m, part[r][threadIdx.x]);
    atomicMax(colmax + j, __float_as_uint(m));
  }
}

__device__ __forceinline__ bool is_outlier(const unsigned* colmax, int64_t j, float threshold) {
  return threshold > 0.f && __uint_as_float(colmax[j]) > threshold;
}

// idx[0 .. *count) = the outlier columns, ascending. One block of 1024 threads.
__global__ void outlier_list_kernel(int* idx, int* count, const unsigned* colmax, int64_t k, float threshold) {
  __shared__ int warp_counts[32];
  int base = 0;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t j0 = 0; j0 < k; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    const bool out = j < k && is_outlier(colmax, j, threshold);
    const unsigned ballot = __ballot_sync(0xffffffffu, out);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < warps; ++w) {
      before += w < warp ? warp_counts[w] : 0;
      total += warp_counts[w];
    }
    if (out) idx[base + before + __popc(ballot & ((1u << lane) - 1))] = int(j);
    base += total;
    __syncthreads();  // warp_counts is rewritten next round
  }
  if (threadIdx.x == 0) *count = base;
}

// One block per row: absmax over the non-outlier columns, then q = rn(x * 127 / absmax).
__global__ void quantize_rows_kernel(int8_t* xq, float* xabs, FloatPtr x, const unsigned* colmax, float threshold,
                                     int64_t k) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  float m = 0.f;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
    if (!is_outlier(colmax, j, threshold)) m = fmaxf(m, fabsf(x.ld(i * k + j)));
  m = block_max(m, red);
  const float scale = m > 0.f ? 127.f / m : 0.f;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
    xq[i * k + j] = is_outlier(colmax, j, threshold) ? int8_t(0) : int8_t(__float2int_rn(__fmul_rn(x.ld(i * k + j), scale)));
  if (threadIdx.x == 0) xabs[i] = m;
}

// y rows [i0, i0 + rows): a thread per output column, kEpiRows rows per block;
// outlier columns come through shared memory 32 at a time. __fmul_rn/__fadd_rn:
// the reference's operation order, without FMA contraction.
constexpr int kEpiRows = 16;
__global__ void int8_epilogue_kernel(FloatPtr y, const int32_t* acc, const float* xabs, const float* wabs,
                                     const int* idx, const int* count, FloatPtr x, const int8_t* wq, int64_t i0,
                                     int64_t rows, int64_t k, int64_t out) {
  __shared__ float xs[kEpiRows][33];
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * kEpiRows;  // row within the chunk
  const int nr = int(rows - r0 < kEpiRows ? rows - r0 : kEpiRows);
  const bool live = o < out;
  const float wdeq = live ? __fmul_rn(wabs[o], kInt8Inv127) : 0.f;
  float v[kEpiRows];
#pragma unroll
  for (int r = 0; r < kEpiRows; ++r)
    v[r] = live && r < nr ? __fmul_rn(__fmul_rn(float(acc[(r0 + r) * out + o]), __fmul_rn(xabs[i0 + r0 + r], kInt8Inv127)), wdeq)
                          : 0.f;
  const int c = *count;
  for (int j0 = 0; j0 < c; j0 += 32) {
    __syncthreads();
    for (int t = threadIdx.x; t < kEpiRows * 32; t += blockDim.x) {
      const int r = t / 32, jj = t % 32;
      xs[r][jj] = r < nr && j0 + jj < c ? x.ld((i0 + r0 + r) * k + idx[j0 + jj]) : 0.f;
    }
    __syncthreads();
    const int cn = c - j0 < 32 ? c - j0 : 32;
    for (int jj = 0; jj < cn; ++jj) {
      const float w = live ? __fmul_rn(float(wq[o * k + idx[j0 + jj]]), wdeq) : 0.f;
#pragma unroll
      for (int r = 0; r < kEpiRows; ++r) v[r] = __fadd_rn(v[r], __fmul_rn(xs[r][jj], w));
    }
  }
#pragma unroll
  for (int r = 0; r < kEpiRows; ++r)
    if (live && r < nr) y.st((i0 + r0 + r) * out + o, v[r]);
}

}  // namespace

void int8_matmul(Tensor y, Tensor x, const Int8Tensor& w, float threshold) {
  const int64_t k = w.cols, out = w.rows, n = x.numel() / k;
  if (n == 0) return;
  if (k % 4 != 0 || out % 4 != 0) {
    // cuBLASLt's int8 kernels need K and N multiples of 4 (every LLM shape is).
    static bool warned = false;
    if (!warned) spdlog::warn("int8_matmul: [{}, {}] is not a multiple of 4: dequantized BF16 product instead "
                              "(no LLM.int8 decomposition) for such shapes", out, k);
    warned = true;
    Tensor dense = Tensor::empty({out, k}, DType::BF16, Device::CUDA);
    cuda::dequantize_rows_int8(dense, w, 0);
    cuda::gemm(y.view({n, out}), x.view({n, k}), dense, false, true, 1.f, 0.f);
    return;
  }
  const FloatPtr px = fptr(x, "int8_matmul x"), py = fptr(y, "int8_matmul y");
  Tensor colmax = Tensor::empty({k}, DType::I32, Device::CUDA);
  Tensor idx = Tensor::empty({k + 1}, DType::I32, Device::CUDA);  // the list, then the count
  Tensor xq = Tensor::empty({n, k}, DType::I8, Device::CUDA);
  Tensor xabs = Tensor::empty({n}, DType::F32, Device::CUDA);
  auto* cm = static_cast<unsigned*>(colmax.raw());
  int* pidx = static_cast<int*>(idx.raw());
  int* pcount = pidx + k;
  if (threshold > 0.f) {
    CUDA_CHECK(cudaMemsetAsync(cm, 0, size_t(k) * 4, stream()));
    const dim3 cgrid(unsigned((k + 31) / 32), unsigned(std::min<int64_t>((n + 7) / 8, 64)));
    col_absmax_kernel<<<cgrid, dim3(32, 8), 0, stream()>>>(cm, px, n, k);
    outlier_list_kernel<<<1, 1024, 0, stream()>>>(pidx, pcount, cm, k, threshold);
  } else {
    // No decomposition (BitNet's W2A8 training product): no column pass over x, no outlier list;
    // is_outlier never reads colmax at threshold 0.
    CUDA_CHECK(cudaMemsetAsync(pcount, 0, sizeof(int), stream()));
  }
  quantize_rows_kernel<<<unsigned(n), 256, 0, stream()>>>(static_cast<int8_t*>(xq.raw()), xabs.f32(), px, cm,
                                                          threshold, k);
  CUDA_CHECK_LAUNCH("int8_matmul prologue");
  int8_rows_matmul(py, static_cast<const int8_t*>(xq.raw()), xabs.f32(), n, w, pidx, pcount, px);
}

void int8_rows_matmul(FloatPtr y, const int8_t* xq, const float* xabs, int64_t n, const Int8Tensor& w, const int* idx,
                      const int* count, FloatPtr x) {
  const int64_t k = w.cols, out = w.rows;
  Tensor none;
  if (count == nullptr) {  // no outlier columns
    none = Tensor::zeros({1}, DType::I32, Device::CUDA);
    count = static_cast<const int*>(none.raw());
  }
  // Row chunks: the int32 product of one chunk is at most 64 MB.
  const int64_t chunk = std::min<int64_t>(n, std::max<int64_t>(kEpiRows, (int64_t(16) << 20) / out / kEpiRows * kEpiRows));
  Tensor acc = Tensor::empty({chunk, out}, DType::I32, Device::CUDA);
  const auto* q8 = static_cast<const int8_t*>(w.q.raw());
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t rows = std::min(chunk, n - i0);
    gemm_rowmajor(acc.raw(), DType::I32, out, xq + i0 * k, k, false, q8, k, true, DType::I8, rows, out, k, 1.f, 0.f);
    const dim3 egrid(unsigned((out + 255) / 256), unsigned((rows + kEpiRows - 1) / kEpiRows));
    int8_epilogue_kernel<<<egrid, 256, 0, stream()>>>(y, static_cast<const int32_t*>(acc.raw()), xabs, w.absmax.f32(),
                                                      idx, count, x, q8, i0, rows, k, out);
    CUDA_CHECK_LAUNCH("int8_matmul epilogue");
  }
}

}  // namespace qtrain::cuda
