// Column scales (IA3, DoRA) on the GPU; references in kernels/cpu/column_scale.cpp.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/column_scale.h"

namespace qtrain::cuda {
namespace {

__global__ void mul_cols_kernel(FloatPtr out, FloatPtr x, const float* v, float offset, int64_t n, int64_t W) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out.st(i, x.ld(i) * (v[i % W] + offset));
}

// g[j] += sum_n a[n,j] b[n,j] (/ div[j]): a block owns 32 columns, its 8 row
// lanes stride over a slice of rows, reduce in shared memory, one atomic per column.
__global__ void col_dot_kernel(float* g, FloatPtr a, FloatPtr b, const float* div, int64_t rows, int64_t cols) {
  __shared__ float part[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < cols)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8)
      acc += a.ld(r * cols + c) * b.ld(r * cols + c);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) s += part[k][threadIdx.x];
    atomicAdd(g + c, div ? s / div[c] : s);
  }
}

// One thread per output feature; r is small (the adapter rank).
__global__ void dora_scale_kernel(float* scale, float* norm, const float* m, const float* wn2, const float* B,
                                  FloatPtr P, const float* Q, float s, int64_t out, int64_t r) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= out) return;
  float cross = 0.f, quad = 0.f;
  for (int64_t k = 0; k < r; ++k) {
    cross += B[i * r + k] * P.ld(k * out + i);
    quad += B[i * r + k] * Q[k * out + i];
  }
  const float n = sqrtf(fmaxf(0.f, wn2[i] + 2.f * s * cross + s * s * quad));
  norm[i] = n;
  scale[i] = m[i] / n;
}

}  // namespace

void mul_cols(Tensor out, Tensor x, Tensor v, float offset) {
  check_cuda_dtype(v, DType::F32, "mul_cols v");
  const int64_t n = x.numel();
  if (n == 0) return;
  mul_cols_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "mul_cols out"), fptr(x, "mul_cols x"), v.f32(),
                                                          offset, n, v.numel());
  CUDA_CHECK_LAUNCH("mul_cols");
}

void col_dot(Tensor g, Tensor a, Tensor b, Tensor div) {
  check_cuda_dtype(g, DType::F32, "col_dot g");
  if (div.defined()) check_cuda_dtype(div, DType::F32, "col_dot div");
  const int64_t cols = g.numel(), rows = a.numel() / cols;
  if (rows == 0) return;
  const int64_t col_blocks = (cols + 31) / 32;
  const int64_t row_blocks =
      std::min<int64_t>((rows + 63) / 64, std::max<int64_t>(1, 4 * Context::get().sm_count() / col_blocks));
  dim3 grid(unsigned(col_blocks), unsigned(std::max<int64_t>(row_blocks, 1)));
  col_dot_kernel<<<grid, dim3(32, 8), 0, stream()>>>(g.f32(), fptr(a, "col_dot a"), fptr(b, "col_dot b"),
                                                     div.defined() ? div.f32() : nullptr, rows, cols);
  CUDA_CHECK_LAUNCH("col_dot");
}

void dora_scale(Tensor scale, Tensor norm, Tensor m, Tensor wn2, Tensor B, Tensor P, Tensor Q, float s) {
  for (const Tensor* t : {&scale, &norm, &m, &wn2, &B, &Q}) check_cuda_dtype(*t, DType::F32, "dora_scale");
  const int64_t out = B.size(0), r = B.size(1);
  dora_scale_kernel<<<unsigned((out + 127) / 128), 128, 0, stream()>>>(
      scale.f32(), norm.f32(), m.f32(), wn2.f32(), B.f32(), fptr(P, "dora_scale P"), Q.f32(), s, out, r);
  CUDA_CHECK_LAUNCH("dora_scale");
}

}  // namespace qtrain::cuda
