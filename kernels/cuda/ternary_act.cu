// BitNet's activation side of the W2A8 product (kernels/ternary.h,
// quantize_act_q8): the SubLN (an RMSNorm without weights) and the per-row int8
// quantization in one pass over x. Unfused, the SubLN wrote its BF16 output and
// every product reading it quantized it again: in a decode step each of q, k, v
// quantized the same row (two block reductions before its first product), and
// at training shapes the quantization was a kernel of its own (7.7 us at
// 8192 x 576, H100, 2026-12-06) after the norm's.
//
// Values: the composition's, bit for bit. The norm's statistics are summed in
// the order of kernels/cuda/norm.cu's kernels for the same shape (a block per
// row for fewer rows than SMs, else a warp per row; a lane's vectors in the same
// order), its output rounded to x's dtype as the stored norm would be, then
// quantized as the GEMV and LLM.int8 quantize (no clamp, round to nearest even).
// Rows longer than the register-held kernels take are walked three times.
#include <algorithm>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm_rows.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/ternary.h"

namespace qtrain::cuda {
namespace {

struct Q8Out {
  int8_t* q;
  float* absmax;
  int* sum;
};

constexpr int kRowThreads = kNormRowThreads;
constexpr int kRowWarps = kNormRowWarps;
constexpr int kMaxWarpVecs = 6;   // a lane's vectors held in registers by the warp-per-row kernel

// A lane's Vec<T>::N values as int8 codes at q[i..]: one 8- or 4-byte store when the row allows it.
template <int N>
__device__ __forceinline__ void store_codes(int8_t* q, int64_t i, int64_t C, bool vec, const int (&c)[N]) {
  if (vec) {
    uint32_t w[(N + 3) / 4] = {};
#pragma unroll
    for (int k = 0; k < N; ++k) w[k / 4] |= uint32_t(uint8_t(int8_t(c[k]))) << (8 * (k % 4));
    if constexpr (N == 8)
      *reinterpret_cast<uint2*>(q + i) = make_uint2(w[0], w[1]);
    else
      *reinterpret_cast<uint32_t*>(q + i) = w[0];
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (i + k < C) q[i + k] = int8_t(c[k]);
  }
}

// The row's values v (a lane's kVecs vectors at first(j)), their absmax mx over the row: the codes
// rn(v * 127 / mx), stored, and this thread's share of their sum.
template <class T, int kVecs, class First>
__device__ __forceinline__ float quantize_held(const Vec<T> (&v)[kVecs], float mx, int8_t* qr, int64_t C, bool vec,
                                               First first) {
  const float scale = mx > 0.f ? 127.f / mx : 0.f;
  float s = 0.f;  // integers below 2^24: exact
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t i = first(j);
    if (i >= C) continue;
    int c[Vec<T>::N];
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) {
      c[k] = i + k < C ? __float2int_rn(__fmul_rn(v[j].v[k], scale)) : 0;
      s += float(c[k]);
    }
    store_codes<Vec<T>::N>(qr, i, C, vec, c);
  }
  return s;
}

// v *= rstd, each value rounded to T as the stored SubLN output (norm.cu: (v - 0) * rstd * 1).
template <class T, int kVecs>
__device__ __forceinline__ void scale_rounded(Vec<T> (&v)[kVecs], float rstd) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j)
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) v[j].v[k] = Vec<T>::to_f(Vec<T>::from_f(v[j].v[k] * rstd));
}

template <class T, int kVecs>
__device__ __forceinline__ float abs_max(const Vec<T> (&v)[kVecs]) {
  float m = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j)
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) m = fmaxf(m, fabsf(v[j].v[k]));
  return m;
}

// A thread's kVecs vectors of the row at first(j), zeros past its end.
template <class T, int kVecs, class First>
__device__ __forceinline__ void load_held(Vec<T> (&v)[kVecs], const T* xr, int64_t C, bool vec, First first) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) v[j].v[k] = 0.f;
    if (first(j) < C) v[j].load(xr, first(j), C, vec);
  }
}

// This thread's share of the row's sum of squares, in norm.cu's order (vector by vector, value by
// value; the zeros past the row's end add nothing, as norm.cu's loops stop there).
template <class T, int kVecs, class First>
__device__ __forceinline__ float sum_squares(const Vec<T> (&v)[kVecs], int64_t C, First first) {
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j)
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) {
      const float d = first(j) + k < C ? v[j].v[k] : 0.f;
      ss += d * d;
    }
  return ss;
}

// Few rows (decode): a block per row, the row in registers (norm_forward_row_kernel's layout).
template <class T, bool kSubln, int kVecs>
__global__ void __launch_bounds__(kRowThreads) q8_row_kernel(Q8Out o, const T* x, int64_t C, bool vec) {
  __shared__ float red[32];
  pdl_entry();  // launched with PDL in a decode step, as the norm it replaces
  const int64_t r = blockIdx.x;
  const auto first = [&](int j) { return (int64_t(j) * kRowThreads + threadIdx.x) * Vec<T>::N; };
  Vec<T> v[kVecs];
  load_held(v, x + r * C, C, vec, first);
  if constexpr (kSubln) scale_rounded(v, rsqrtf(block_sum(sum_squares(v, C, first), red) / float(C) + kSubLnEps));
  const float mx = block_max(abs_max(v), red);
  const float s = block_sum(quantize_held(v, mx, o.q + r * C, C, vec, first), red);
  if (threadIdx.x == 0) o.absmax[r] = mx, o.sum[r] = int(s);
}

// Many rows (training): a warp per row (norm_forward_kernel's lanes), the row in registers.
template <class T, bool kSubln, int kVecs>
__global__ void __launch_bounds__(32 * kRowWarps) q8_warp_kernel(Q8Out o, const T* x, int64_t N, int64_t C, bool vec) {
  const int lane = threadIdx.x & 31;
  const auto first = [&](int j) { return (int64_t(j) * 32 + lane) * Vec<T>::N; };
  for (int64_t r = blockIdx.x * int64_t(kRowWarps) + (threadIdx.x >> 5); r < N; r += int64_t(gridDim.x) * kRowWarps) {
    Vec<T> v[kVecs];
    load_held(v, x + r * C, C, vec, first);
    if constexpr (kSubln) scale_rounded(v, rsqrtf(warp_sum(sum_squares(v, C, first)) / float(C) + kSubLnEps));
    const float mx = warp_max(abs_max(v));
    const float s = warp_sum(quantize_held(v, mx, o.q + r * C, C, vec, first));
    if (lane == 0) o.absmax[r] = mx, o.sum[r] = int(s);
  }
}

// Many rows too long for the registers (LLaMA-7B's training shapes): a warp per row walking it in
// norm_forward_kernel's order, once for the norm's sum of squares, once for the absmax, once for
// the codes; the re-reads come from L1/L2.
template <class T, bool kSubln>
__global__ void __launch_bounds__(32 * kRowWarps) q8_warp_loop_kernel(Q8Out o, const T* x, int64_t N, int64_t C, bool vec) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(kRowWarps) + (threadIdx.x >> 5); r < N; r += int64_t(gridDim.x) * kRowWarps) {
    const T* xr = x + r * C;
    float rstd = 1.f;
    if constexpr (kSubln) {
      float ss = 0.f;
      for (int64_t i = int64_t(lane) * Vec<T>::N; i < C; i += 32 * Vec<T>::N) {
        Vec<T> v;
        v.load(xr, i, C, vec);
#pragma unroll
        for (int k = 0; k < Vec<T>::N; ++k) {
          const float d = i + k < C ? v.v[k] : 0.f;
          ss += d * d;
        }
      }
      rstd = rsqrtf(warp_sum(ss) / float(C) + kSubLnEps);
    }
    const auto load = [&](Vec<T> (&v)[1], int64_t i) {
      v[0].load(xr, i, C, vec);
      if (kSubln) scale_rounded(v, rstd);
    };
    float mx = 0.f;
    for (int64_t i = int64_t(lane) * Vec<T>::N; i < C; i += 32 * Vec<T>::N) {
      Vec<T> v[1];
      load(v, i);
      mx = fmaxf(mx, abs_max(v));
    }
    mx = warp_max(mx);
    float s = 0.f;
    for (int64_t i = int64_t(lane) * Vec<T>::N; i < C; i += 32 * Vec<T>::N) {
      Vec<T> v[1];
      load(v, i);
      s += quantize_held(v, mx, o.q + r * C, C, vec, [&](int) { return i; });
    }
    s = warp_sum(s);
    if (lane == 0) o.absmax[r] = mx, o.sum[r] = int(s);
  }
}

template <class T, bool kSubln>
void launch(const Q8Out& o, const T* x, int64_t N, int64_t C, bool vec) {
  constexpr int n = Vec<T>::N;
  // norm.cu's choice of kernel for the same rows, so the sums run in its order.
  if (const int vecs = norm_row_vecs(N, C, n)) {
    auto kernel = vecs == 1   ? q8_row_kernel<T, kSubln, 1>
                  : vecs == 2 ? q8_row_kernel<T, kSubln, 2>
                  : vecs == 4 ? q8_row_kernel<T, kSubln, 4>
                              : q8_row_kernel<T, kSubln, 6>;
    launch_pdl(pdl_small(N), kernel, unsigned(N), unsigned(kRowThreads), 0, o, x, C, vec);
    CUDA_CHECK_LAUNCH("quantize_act_q8 rows");
    return;
  }
  const unsigned blocks = unsigned(std::min<int64_t>((N + kRowWarps - 1) / kRowWarps, int64_t(Context::get().sm_count()) * 16));
  const int vecs = int((C + 32 * n - 1) / (32 * n));
  if (vecs > kMaxWarpVecs) {
    q8_warp_loop_kernel<T, kSubln><<<blocks, 32 * kRowWarps, 0, stream()>>>(o, x, N, C, vec);
  } else {
    auto kernel = vecs == 1   ? q8_warp_kernel<T, kSubln, 1>
                  : vecs == 2 ? q8_warp_kernel<T, kSubln, 2>
                  : vecs == 3 ? q8_warp_kernel<T, kSubln, 3>
                              : q8_warp_kernel<T, kSubln, kMaxWarpVecs>;
    kernel<<<blocks, 32 * kRowWarps, 0, stream()>>>(o, x, N, C, vec);
  }
  CUDA_CHECK_LAUNCH("quantize_act_q8 warps");
}

template <class T>
void quantize_t(const Q8Rows& act, Tensor x, bool subln) {
  const int64_t C = x.size(-1), N = x.numel() / C;
  const Q8Out o{static_cast<int8_t*>(act.q.raw()), act.absmax.f32(), static_cast<int*>(act.sum.raw())};
  const T* px = static_cast<const T*>(x.raw());
  const bool vec = vec_ok<T>(C, {x.raw()}) && C % 8 == 0 && reinterpret_cast<uintptr_t>(o.q) % 8 == 0;
  if (subln)
    launch<T, true>(o, px, N, C, vec);
  else
    launch<T, false>(o, px, N, C, vec);
}

}  // namespace

void quantize_act_q8(const Q8Rows& act, Tensor x, bool subln) {
  if (x.numel() == 0) return;
  check_cuda_dtype(act.q, DType::I8, "quantize_act_q8 act.q");
  if (x.dtype() == DType::BF16)
    quantize_t<bf16>(act, x, subln);
  else if (x.dtype() == DType::F32)
    quantize_t<float>(act, x, subln);
  else
    QT_CHECK(false, std::string("quantize_act_q8: unsupported x dtype ") + dtype_name(x.dtype()));
}

}  // namespace qtrain::cuda
