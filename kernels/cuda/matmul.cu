// gemm (cuBLASLt, any mix of BF16/F32 operands), bias add and bias gradient.
#include <string>

#include "kernels/cuda/col_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/matmul.h"
#include "kernels/cuda/gemm_lt.cuh"

namespace qtrain::cuda {
namespace {

// [rows, cols] of a tensor flattened to 2-D on its last dim (the public op,
// kernels/cpu/matmul.cpp, checked the shapes before the dispatch).
void as_2d(const Tensor& t, int64_t& rows, int64_t& cols) {
  cols = t.size(-1);
  rows = cols ? t.numel() / cols : 0;
}

// cuBLASLt has no mixed BF16 x F32 kernels: an F32 operand that meets a BF16 one
// (in practice a small LoRA matrix) is rounded into a BF16 scratch.
const void* as_bf16(const Tensor& t, Scratch slot) {
  if (t.dtype() == DType::BF16) return t.raw();
  void* s = Context::get().scratch(slot, size_t(t.numel()) * 2);
  convert_n(FloatPtr{s, DType::BF16}, fptr(t, "gemm operand"), t.numel());
  return s;
}

__global__ void add_bias_kernel(FloatPtr y, FloatPtr bias, int64_t n, int64_t out) {
  QT_GRID_STRIDE(i, n)
    y.st(i, y.ld(i) + bias.ld(i % out));
}

// BF16 y with out % 8 == 0 and 16-byte alignment: 8 elements per access (the
// generic kernel above ran at ~40% of DRAM bandwidth on GPT-2 shapes).
__global__ void add_bias_bf16x8_kernel(bf16* y, FloatPtr bias, int64_t n8, int64_t out) {
  QT_GRID_STRIDE(v, n8) {
    int4 raw = reinterpret_cast<int4*>(y)[v];
    bf16* e = reinterpret_cast<bf16*>(&raw);
    const int64_t c0 = (v * 8) % out;
#pragma unroll
    for (int k = 0; k < 8; ++k) e[k] = __float2bfloat16_rn(__bfloat162float(e[k]) + bias.ld(c0 + k));
    reinterpret_cast<int4*>(y)[v] = raw;
  }
}

// dbias[c] += sum_r dy[r, c] for BF16 dy, cols % 8 == 0, 16-byte aligned: a
// lane owns 8 adjacent columns (one 16-byte load per row), a block 256
// columns x 8 row groups; row groups reduce in shared memory, then one atomic
// per column per block.
__global__ void bias_backward_bf16x8_kernel(float* dbias, const bf16* dy, int64_t rows, int64_t cols) {
  __shared__ float part[8][256 + 1];
  const int64_t c0 = (int64_t(blockIdx.x) * 32 + threadIdx.x) * 8;
  float acc[8] = {};
  if (c0 < cols)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8) {
      int4 raw = *reinterpret_cast<const int4*>(dy + r * cols + c0);
      const bf16* e = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += __bfloat162float(e[k]);
    }
#pragma unroll
  for (int k = 0; k < 8; ++k) part[threadIdx.y][threadIdx.x * 8 + k] = acc[k];
  __syncthreads();
  const int t = threadIdx.y * 32 + threadIdx.x;  // 0..255: one column of the block each
  const int64_t c = int64_t(blockIdx.x) * 256 + t;
  if (c < cols) atomicAdd(dbias + c, sum_row_lanes(part, t));
}

// dbias[c] += sum_r dy[r, c]. A block owns 32 columns; its 8 row lanes stride
// over a slice of rows, then reduce in shared memory and add once per block.
__global__ void bias_backward_kernel(float* dbias, FloatPtr dy, int64_t rows, int64_t cols) {
  __shared__ float part[8][33];
  int64_t c = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < cols)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8) acc += dy.ld(r * cols + c);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) atomicAdd(dbias + c, sum_row_lanes(part, threadIdx.x));
}

}  // namespace

namespace {
// False when a bias epilogue has no cuBLASLt algorithm at this shape (gemm_rowmajor): nothing ran.
bool gemm_with(Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta, const void* bias) {
  int64_t ar, ac, br, bc;
  as_2d(a, ar, ac);
  as_2d(b, br, bc);
  int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac, N = trans_b ? br : bc;
  fptr(a, "gemm a"), fptr(b, "gemm b"), fptr(c, "gemm c");
  QT_CHECK(c.dtype() == DType::BF16 || c.dtype() == DType::F32, "gemm: c must be BF16 or F32");
  QT_CHECK(a.dtype() != DType::F16 && b.dtype() != DType::F16, "gemm: F16 operands are not supported");
  const void* pa = a.raw();
  const void* pb = b.raw();
  DType abt = a.dtype();
  // F32 x F32 stays exact in F32 unless c is BF16 (no such cuBLASLt kernel).
  bool all_f32 = a.dtype() == DType::F32 && b.dtype() == DType::F32 && c.dtype() == DType::F32;
  if (!all_f32 && (a.dtype() != DType::BF16 || b.dtype() != DType::BF16)) {
    pa = as_bf16(a, Scratch::GemmA);
    pb = as_bf16(b, Scratch::GemmB);
    abt = DType::BF16;
  }
  return gemm_rowmajor(c.raw(), c.dtype(), N, pa, trans_a ? M : K, trans_a, pb, trans_b ? K : N, trans_b, abt, M,
                       N, K, alpha, beta, bias);
}
}  // namespace

void gemm(Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  gemm_with(c, a, b, trans_a, trans_b, alpha, beta, nullptr);
}

void gemm_bias(Tensor y, Tensor x, Tensor w, Tensor bias) {
  if (x.size(-1) > 0) {  // an empty product runs no epilogue
    // cuBLASLt's bias has D's dtype and wants 16 bytes of alignment: otherwise a rounded copy.
    const void* pb = bias.raw();
    if (bias.dtype() != y.dtype() || reinterpret_cast<uintptr_t>(pb) % 16 != 0) {
      void* s = Context::get().scratch(Scratch::GemmBias, size_t(bias.numel()) * 4);
      convert_n(FloatPtr{s, y.dtype()}, fptr(bias, "gemm_bias bias"), bias.numel());
      pb = s;
    }
    if (gemm_with(y, x, w, false, true, 1.f, 0.f, pb)) return;
  }
  // No bias epilogue at this shape (or K = 0): the product, then add_bias.
  cuda::gemm(y, x, w, false, true);  // qualified: ADL on Tensor finds qtrain:: too
  cuda::add_bias(y, bias);
}

void add_bias(Tensor y, Tensor bias) {
  int64_t out = bias.numel();  // == y.size(-1) > 0, checked by the public op
  int64_t n = y.numel();
  if (y.dtype() == DType::BF16 && out % 8 == 0 && reinterpret_cast<uintptr_t>(y.raw()) % 16 == 0) {
    add_bias_bf16x8_kernel<<<grid_for(n / 8, 256), 256, 0, stream()>>>(static_cast<bf16*>(y.raw()),
                                                                         fptr(bias, "add_bias bias"), n / 8, out);
    CUDA_CHECK_LAUNCH("add_bias");
    return;
  }
  add_bias_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(y, "add_bias y"), fptr(bias, "add_bias bias"), n, out);
  CUDA_CHECK_LAUNCH("add_bias");
}

void bias_backward(Tensor dbias, Tensor dy) {
  check_cuda_dtype(dbias, DType::F32, "bias_backward dbias");
  int64_t cols = dbias.numel();  // == dy.size(-1) > 0, checked by the public op
  int64_t rows = dy.numel() / cols;
  if (rows == 0) return;
  if (dy.dtype() == DType::BF16 && cols % 8 == 0 && reinterpret_cast<uintptr_t>(dy.raw()) % 16 == 0) {
    const dim3 grid = col_sums_grid((cols + 255) / 256, rows, 8);
    bias_backward_bf16x8_kernel<<<grid, dim3(32, 8), 0, stream()>>>(dbias.f32(), static_cast<const bf16*>(dy.raw()),
                                                                      rows, cols);
    CUDA_CHECK_LAUNCH("bias_backward");
    return;
  }
  const dim3 grid = col_sums_grid((cols + 31) / 32, rows, 4);
  bias_backward_kernel<<<grid, dim3(32, 8), 0, stream()>>>(dbias.f32(), fptr(dy, "bias_backward dy"), rows, cols);
  CUDA_CHECK_LAUNCH("bias_backward");
}

}  // namespace qtrain::cuda
