// Pointwise ops over n elements: launch_pointwise() runs a functor that takes
// the NIN input values of one element and writes its NOUT outputs (all F32
// math). With every operand BF16 and 16-byte aligned it moves 8 elements per
// 16-byte access; otherwise a grid-stride FloatPtr kernel (any float dtype,
// any alignment) runs the same functor, so both paths give identical bits.
//
// Why: the scalar FloatPtr kernels switch on the dtype per element and move
// 2 bytes per access; SwiGLU backward ran at ~40% of DRAM bandwidth.
#pragma once
#include <array>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pdl.cuh"

namespace qtrain::cuda {

template <int NIN, int NOUT>
struct Bf16Operands {
  const bf16* in[NIN];
  bf16* out[NOUT];
};

template <int NIN, int NOUT, class Op>
__global__ void pointwise_bf16_kernel(Bf16Operands<NIN, NOUT> o, int64_t n, Op op) {
  pdl_entry();  // one-wave launches go with PDL (pointwise_bf16)
  const int64_t nvec = n / 8;
  QT_GRID_STRIDE(v, nvec) {
    float x[NIN][8], y[NOUT][8];
#pragma unroll
    for (int a = 0; a < NIN; ++a) {
      int4 raw = reinterpret_cast<const int4*>(o.in[a])[v];
      const bf16* e = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
      for (int k = 0; k < 8; ++k) x[a][k] = __bfloat162float(e[k]);
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      float xi[NIN], yi[NOUT];
#pragma unroll
      for (int a = 0; a < NIN; ++a) xi[a] = x[a][k];
      op(xi, yi);
#pragma unroll
      for (int b = 0; b < NOUT; ++b) y[b][k] = yi[b];
    }
#pragma unroll
    for (int b = 0; b < NOUT; ++b) {
      int4 raw;
      bf16* e = reinterpret_cast<bf16*>(&raw);
#pragma unroll
      for (int k = 0; k < 8; ++k) e[k] = __float2bfloat16_rn(y[b][k]);
      reinterpret_cast<int4*>(o.out[b])[v] = raw;
    }
  }
  // the tail (n % 8 elements), one thread each
  const int64_t t = nvec * 8 + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t < n && blockIdx.x == 0) {
    float xi[NIN], yi[NOUT];
#pragma unroll
    for (int a = 0; a < NIN; ++a) xi[a] = __bfloat162float(o.in[a][t]);
    op(xi, yi);
#pragma unroll
    for (int b = 0; b < NOUT; ++b) o.out[b][t] = __float2bfloat16_rn(yi[b]);
  }
}

template <int NIN, int NOUT>
struct FloatOperands {
  FloatPtr in[NIN];
  FloatPtr out[NOUT];
};

template <int NIN, int NOUT, class Op>
__global__ void pointwise_any_kernel(FloatOperands<NIN, NOUT> o, int64_t n, Op op) {
  QT_GRID_STRIDE(i, n) {
    float xi[NIN], yi[NOUT];
#pragma unroll
    for (int a = 0; a < NIN; ++a) xi[a] = o.in[a].ld(i);
    op(xi, yi);
#pragma unroll
    for (int b = 0; b < NOUT; ++b) o.out[b].st(i, yi[b]);
  }
}

// Runs op with the vector kernel and returns true when every tensor is BF16
// and 16-byte aligned; false (nothing launched) otherwise.
template <int NIN, int NOUT, class Op>
bool pointwise_bf16(const std::array<Tensor, NIN>& in, const std::array<Tensor, NOUT>& out, int64_t n, Op op,
                    const char* what) {
  Bf16Operands<NIN, NOUT> o;
  auto ok = [](const Tensor& t) {
    return t.dtype() == DType::BF16 && reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0;
  };
  for (int a = 0; a < NIN; ++a) {
    if (!ok(in[size_t(a)])) return false;
    o.in[a] = static_cast<const bf16*>(in[size_t(a)].raw());
  }
  for (int b = 0; b < NOUT; ++b) {
    if (!ok(out[size_t(b)])) return false;
    o.out[b] = static_cast<bf16*>(out[size_t(b)].raw());
  }
  if (n == 0) return true;
  const int64_t work = std::max<int64_t>(n / 8, 1);
  const unsigned blocks = unsigned(grid_for(work, 256));
  launch_pdl(pdl_small(blocks), pointwise_bf16_kernel<NIN, NOUT, Op>, blocks, 256u, 0, o, n, op);
  CUDA_CHECK_LAUNCH(what);
  return true;
}

// out[b][i] = op(in[0][i], ...) over the first n elements of each tensor.
// Outputs may alias inputs (each element is read before it is written).
template <int NIN, int NOUT, class Op>
void launch_pointwise(const std::array<Tensor, NIN>& in, const std::array<Tensor, NOUT>& out, int64_t n, Op op,
                      const char* what) {
  for (const Tensor& t : in) QT_CHECK(t.numel() >= n, std::string(what) + ": operand too small");
  for (const Tensor& t : out) QT_CHECK(t.numel() >= n, std::string(what) + ": operand too small");
  if (n == 0 || pointwise_bf16<NIN, NOUT>(in, out, n, op, what)) return;
  FloatOperands<NIN, NOUT> o;
  for (int a = 0; a < NIN; ++a) o.in[a] = fptr(in[size_t(a)], what);
  for (int b = 0; b < NOUT; ++b) o.out[b] = fptr(out[size_t(b)], what);
  pointwise_any_kernel<NIN, NOUT><<<grid_for(n, 256), 256, 0, stream()>>>(o, n, op);
  CUDA_CHECK_LAUNCH(what);
}

}  // namespace qtrain::cuda
