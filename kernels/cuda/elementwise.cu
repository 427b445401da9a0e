// Pointwise ops, conversions, column blocks, dropout and the squared-sum
// reduction. Memory-bound grid-stride loops; dtypes resolved per element
// through FloatPtr (a uniform branch).
#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"
#include "kernels/cuda/pointwise.cuh"

namespace qtrain::cuda {
namespace {

struct Axpy {  // in: y, x
  float a;
  __device__ void operator()(const float* in, float* out) const { out[0] = in[0] + a * in[1]; }
};

__global__ void scale_kernel(FloatPtr y, float a, int64_t n) {
  QT_GRID_STRIDE(i, n) y.st(i, y.ld(i) * a);
}

__global__ void convert_kernel(FloatPtr dst, FloatPtr src, int64_t n) {
  QT_GRID_STRIDE(i, n) dst.st(i, src.ld(i));
}

// Accumulated in double per thread, then per block, then one atomic per block.
__global__ void sum_squares_kernel(double* out, FloatPtr x, int64_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  QT_GRID_STRIDE(i, n) {
    double v = x.ld(i);
    acc += v * v;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

// out[r, c] (+)= in[r, off + c] or the reverse, for an [N, w] block of an [N, W] matrix.
template <bool kAdd>
__global__ void cols_kernel(FloatPtr narrow, FloatPtr wide, int64_t rows, int64_t w, int64_t W, int64_t off) {
  QT_GRID_STRIDE(i, rows * w) {
    int64_t r = i / w, c = i % w;
    int64_t j = r * W + off + c;
    if (kAdd)
      wide.st(j, wide.ld(j) + narrow.ld(i));
    else
      narrow.st(i, wide.ld(j));
  }
}

// Must match qtrain::hash_uniform (kernels/cpu/elementwise.cpp) bit for bit:
// u = (mix64(mix64(seed) + (index + 1) * golden) >> 40) / 2^24, mix64 being
// SplitMix64's finaliser.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ float hash_uniform_dev(uint64_t seed, uint64_t index) {
  uint64_t z = mix64(mix64(seed) + (index + 1) * 0x9E3779B97F4A7C15ull);
  return float(z >> 40) * (1.0f / 16777216.0f);
}

__global__ void dropout_forward_kernel(FloatPtr out, uint8_t* mask, FloatPtr x, float p, float inv_keep, uint64_t seed,
                                       uint64_t offset, int64_t n) {
  QT_GRID_STRIDE(i, n) {
    bool keep = hash_uniform_dev(seed, offset + uint64_t(i)) >= p;
    mask[i] = keep;
    out.st(i, keep ? x.ld(i) * inv_keep : 0.f);
  }
}

__global__ void dropout_backward_kernel(FloatPtr dx, FloatPtr dout, const uint8_t* mask, float inv_keep, int64_t n) {
  QT_GRID_STRIDE(i, n) dx.st(i, mask[i] ? dout.ld(i) * inv_keep : 0.f);
}

}  // namespace

void convert_n(FloatPtr dst, FloatPtr src, int64_t n) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(dst, src, n);
  CUDA_CHECK_LAUNCH("convert");
}

void add_inplace(Tensor y, Tensor x) { cuda::axpy(y, 1.f, x); }  // qualified: ADL on Tensor finds qtrain::axpy too

void axpy(Tensor y, float a, Tensor x) {
  int64_t n = y.numel();
  if (n == 0) return;
  launch_pointwise<2, 1>({y, x}, {y}, n, Axpy{a}, "axpy");
}

void scale_inplace(Tensor y, float a) {
  int64_t n = y.numel();
  if (n == 0) return;
  scale_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(y, "scale y"), a, n);
  CUDA_CHECK_LAUNCH("scale_inplace");
}

void convert(Tensor dst, Tensor src) {
  convert_n(fptr(dst, "convert dst"), fptr(src, "convert src"), dst.numel());
}

double sum_squares(Tensor x) {
  int64_t n = x.numel();
  if (n == 0) return 0.0;
  double* d = static_cast<double*>(Context::get().scratch(Scratch::Reduce, sizeof(double)));
  cudaStream_t s = stream();
  CUDA_CHECK(cudaMemsetAsync(d, 0, sizeof(double), s));
  sum_squares_kernel<<<grid_for(n, 512), 512, 0, s>>>(d, fptr(x, "sum_squares x"), n);
  CUDA_CHECK_LAUNCH("sum_squares");
  double h = 0;
  CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return h;
}

static void cols_op(Tensor narrow, Tensor wide, int64_t off, bool add) {
  int64_t W = wide.size(-1), w = narrow.size(-1);
  int64_t rows = W ? wide.numel() / W : 0;  // the window was checked by the public op (kernels/cpu/elementwise.cpp)
  int64_t n = rows * w;
  if (n == 0) return;
  FloatPtr np = fptr(narrow, "cols narrow"), wp = fptr(wide, "cols wide");
  if (add)
    cols_kernel<true><<<grid_for(n, 256), 256, 0, stream()>>>(np, wp, rows, w, W, off);
  else
    cols_kernel<false><<<grid_for(n, 256), 256, 0, stream()>>>(np, wp, rows, w, W, off);
  CUDA_CHECK_LAUNCH("cols");
}

void copy_cols(Tensor out, Tensor in, int64_t col_offset) { cols_op(out, in, col_offset, false); }
void add_cols(Tensor out, Tensor in, int64_t col_offset) { cols_op(in, out, col_offset, true); }

void dropout_forward(Tensor out, Tensor mask, Tensor x, float p, uint64_t seed, uint64_t offset) {
  int64_t n = x.numel();
  if (n == 0) return;
  dropout_forward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "dropout out"), mask.data<uint8_t>(),
                                                                   fptr(x, "dropout x"), p, 1.f / (1.f - p), seed,
                                                                   offset, n);
  CUDA_CHECK_LAUNCH("dropout_forward");
}

void dropout_backward(Tensor dx, Tensor dout, Tensor mask, float p) {
  int64_t n = dx.numel();
  if (n == 0) return;
  dropout_backward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(dx, "dropout dx"), fptr(dout, "dropout dout"),
                                                                    mask.data<uint8_t>(), 1.f / (1.f - p), n);
  CUDA_CHECK_LAUNCH("dropout_backward");
}

}  // namespace qtrain::cuda
