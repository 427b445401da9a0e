// BitNet quantizers on the GPU; references in kernels/cpu/ternary.cpp. The
// same float operations in the same order, so values match the reference
// up to the mean's summation order.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

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

}  // namespace

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
