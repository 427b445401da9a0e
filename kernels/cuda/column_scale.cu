// Column scales (IA3, DoRA) on the GPU; references in kernels/cpu/column_scale.cpp.
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/col_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/column_scale.h"

namespace qtrain::cuda {
namespace {

__global__ void mul_cols_kernel(FloatPtr out, FloatPtr x, const float* v, float offset, int64_t n, int64_t W) {
  QT_GRID_STRIDE(i, n)
    out.st(i, x.ld(i) * (v[i % W] + offset));
}

// BF16 rows of W % 8 == 0 columns: 8 elements per 16-byte access, the column
// from 32-bit index math. The generic kernel above (a 64-bit modulo and a
// dtype switch per element) ran DoRA's and IA3's column scales at ~1.5 TB/s,
// 17% of a DoRA step.
__global__ void mul_cols_bf16x8_kernel(bf16* out, bf16* keep, const bf16* x, const float* v, float offset, uint32_t n8,
                                       uint32_t w8) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += gridDim.x * blockDim.x) {
    const int4 raw = reinterpret_cast<const int4*>(x)[i];
    if (keep) reinterpret_cast<int4*>(keep)[i] = raw;
    const float* vc = v + 8 * (i % w8);  // a trainable vector's view need not be 16-byte aligned
    const bf16* e = reinterpret_cast<const bf16*>(&raw);
    int4 res;
    bf16* r = reinterpret_cast<bf16*>(&res);
#pragma unroll
    for (int k = 0; k < 8; ++k) r[k] = __float2bfloat16_rn(__bfloat162float(e[k]) * (__ldg(vc + k) + offset));
    reinterpret_cast<int4*>(out)[i] = res;
  }
}

// g[j] += sum_n a[n,j] b[n,j] (/ div[j]), BF16 rows of W % 8 == 0 columns: a
// thread owns 8 columns (16-byte loads; a warp reads 512 contiguous bytes of a
// row, where one column per thread read 64), 8 row lanes per block stride
// over the block's slice of rows, then shared memory and one atomic per column.
__global__ void col_dot_bf16x8_kernel(float* g, const bf16* a, const bf16* b, const float* div, int64_t rows, int w8) {
  __shared__ float part[8][32 * 8 + 1];
  const int c8 = blockIdx.x * 32 + threadIdx.x;
  float acc[8] = {};
  if (c8 < w8)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += int64_t(gridDim.y) * 8) {
      const int4 av = reinterpret_cast<const int4*>(a)[r * w8 + c8], bv = reinterpret_cast<const int4*>(b)[r * w8 + c8];
      const bf16 *ae = reinterpret_cast<const bf16*>(&av), *be = reinterpret_cast<const bf16*>(&bv);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += __bfloat162float(ae[k]) * __bfloat162float(be[k]);
    }
#pragma unroll
  for (int k = 0; k < 8; ++k) part[threadIdx.y][threadIdx.x * 8 + k] = acc[k];
  __syncthreads();
  const int t = threadIdx.y * 32 + threadIdx.x;  // 256 threads, one per column of the block
  const int64_t c = int64_t(blockIdx.x) * 256 + t;
  if (c < int64_t(w8) * 8) {
    const float s = sum_row_lanes(part, t);
    atomicAdd(g + c, div ? s / div[c] : s);
  }
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
    const float s = sum_row_lanes(part, threadIdx.x);
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

bool bf16x8(std::initializer_list<const Tensor*> ts, int64_t W) {
  if (W % 8 != 0) return false;
  for (const Tensor* t : ts)
    if (t->defined() && (t->dtype() != DType::BF16 || reinterpret_cast<uintptr_t>(t->raw()) % 16 != 0)) return false;
  return true;
}

}  // namespace

void mul_cols(Tensor out, Tensor x, Tensor v, float offset, Tensor keep) {
  check_cuda_dtype(v, DType::F32, "mul_cols v");
  const int64_t n = x.numel();
  if (n == 0) return;
  if (bf16x8({&out, &x, &keep}, v.numel()) && n / 8 < (int64_t(1) << 31)) {
    const int64_t n8 = n / 8;
    mul_cols_bf16x8_kernel<<<grid_for(n8, 256), 256, 0, stream()>>>(
        static_cast<bf16*>(out.raw()), keep.defined() ? static_cast<bf16*>(keep.raw()) : nullptr,
        static_cast<const bf16*>(x.raw()), v.f32(), offset, uint32_t(n8), uint32_t(v.numel() / 8));
    CUDA_CHECK_LAUNCH("mul_cols");
    return;
  }
  if (keep.defined()) keep.copy_from(x);
  mul_cols_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "mul_cols out"), fptr(x, "mul_cols x"), v.f32(),
                                                          offset, n, v.numel());
  CUDA_CHECK_LAUNCH("mul_cols");
}

void col_dot(Tensor g, Tensor a, Tensor b, Tensor div) {
  check_cuda_dtype(g, DType::F32, "col_dot g");
  if (div.defined()) check_cuda_dtype(div, DType::F32, "col_dot div");
  const int64_t cols = g.numel(), rows = a.numel() / cols;
  if (rows == 0) return;
  // A block owns 32 column units (8 columns each on the BF16 path, else one).
  const bool vec = bf16x8({&a, &b}, cols);
  const int64_t units = vec ? cols / 8 : cols;
  const dim3 grid = col_sums_grid((units + 31) / 32, rows, 4);
  if (vec) {
    col_dot_bf16x8_kernel<<<grid, dim3(32, 8), 0, stream()>>>(g.f32(), static_cast<const bf16*>(a.raw()),
                                                              static_cast<const bf16*>(b.raw()),
                                                              div.defined() ? div.f32() : nullptr, rows, int(units));
    CUDA_CHECK_LAUNCH("col_dot");
    return;
  }
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
