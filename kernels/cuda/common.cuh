// Device-side helpers shared by the CUDA kernels: dtype-generic element
// access (activations may be BF16 or F32), warp/block reductions, launch sizes.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/tensor.h"

namespace qtrain::cuda {

using bf16 = __nv_bfloat16;

// A float tensor's pointer and dtype, passed by value into kernels. The dtype
// branch is uniform across a launch, so it costs little in memory-bound code.
struct FloatPtr {
  void* p;
  DType t;
  __device__ __forceinline__ float ld(int64_t i) const {
    switch (t) {
      case DType::BF16: return __bfloat162float(static_cast<const bf16*>(p)[i]);
      case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
      default: return static_cast<const float*>(p)[i];
    }
  }
  __device__ __forceinline__ void st(int64_t i, float v) const {
    switch (t) {
      case DType::BF16: static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v); break;
      case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
      default: static_cast<float*>(p)[i] = v; break;
    }
  }
};

inline bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

// Internal invariant: a float tensor on the GPU (wrong placement is a qtrain bug).
inline FloatPtr fptr(const Tensor& t, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(t.is_cuda(), std::string(what) + ": tensor is not on the GPU");
  QT_CHECK(is_float_dtype(t.dtype()), std::string(what) + ": expected F32/BF16/F16, got " + dtype_name(t.dtype()));
  return FloatPtr{t.raw(), t.dtype()};
}

inline void check_cuda_dtype(const Tensor& t, DType want, const char* what) {
  QT_CHECK(t.defined() && t.is_cuda(), std::string(what) + ": expected a GPU tensor");
  QT_CHECK(t.dtype() == want, std::string(what) + ": expected " + dtype_name(want) + ", got " + dtype_name(t.dtype()));
}

// Grid size for a grid-stride loop over n elements. It caps the grid at 16
// blocks per SM, so a kernel launched with it must loop (QT_GRID_STRIDE): one
// that takes a single index per thread leaves everything past sm_count * 16 *
// block untouched (unpack_ternary did, from 4096 x 4096 up).
#define QT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)
inline int grid_for(int64_t n, int block) {
  int64_t blocks = (n + block - 1) / block;
  int64_t cap = int64_t(Context::get().sm_count()) * 16;
  if (blocks > cap) blocks = cap;
  return int(blocks < 1 ? 1 : blocks);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every
// thread gets the result. `shared` holds 32 values.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  int nw = int(blockDim.x >> 5);
  T r = lane < nw ? shared[lane] : T(0);
  return warp_sum(r);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  int nw = int(blockDim.x >> 5);
  float r = lane < nw ? shared[lane] : -INFINITY;
  return warp_max(r);
}

}  // namespace qtrain::cuda

namespace qtrain::cuda {
// dst[i] = src[i] for n elements with dtype conversion, queued on the stream
// (elementwise.cu). Used by ops that need a temporary in another dtype.
void convert_n(FloatPtr dst, FloatPtr src, int64_t n);
}  // namespace qtrain::cuda
