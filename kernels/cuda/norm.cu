// LayerNorm and RMSNorm, forward and backward. One warp per row, 16-byte
// vector loads, statistics in F32. The row is re-read from L1/L2 for each
// pass rather than held in registers, so any width C works. Backward
// accumulates dw/db per block in shared memory, then one atomic per column.
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm_rows.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/norm.h"
#include "kernels/cuda/vec.cuh"

namespace qtrain::cuda {
namespace {

constexpr int kWarps = kNormRowWarps;  // rows in flight per block

// Runs body(i, Vec&) for each vector of the row owned by this lane.
#define QT_ROW_LOOP(i)                                                       \
  for (int64_t i = int64_t(lane) * Vec<T>::N; i < C; i += 32 * Vec<T>::N)

// v = x[i..], after the fused residual add when res is set: x[i..] += res[i..],
// each sum rounded to T and stored, so the norm reads what a stored sum holds.
template <class T>
__device__ __forceinline__ void load_adding(Vec<T>& v, T* xr, const T* rr, int64_t i, int64_t C, bool vec) {
  v.load(xr, i, C, vec);
  if (rr) {
    Vec<T> rv;
    rv.load(rr, i, C, vec);
    v.add_rounded(rv);
    v.store(xr, i, C, vec);
  }
}

// With res (the fused residual add), the first pass over a row adds it
// (load_adding); the later passes re-read x (this lane's own stores), so the
// statistics are those of the stored sum.
template <class T, bool kRms>
__global__ void norm_forward_kernel(T* out, float* mean_out, float* rstd_out, T* x, const T* res, FloatPtr w,
                                    FloatPtr b, int64_t N, int64_t C, float eps, bool vec) {
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); r < N; r += int64_t(gridDim.x) * kWarps) {
    T* xr = x + r * C;
    const T* rr = res ? res + r * C : nullptr;
    float mean = 0.f;
    if (!kRms) {
      float s = 0.f;
      QT_ROW_LOOP(i) {
        Vec<T> v;
        load_adding(v, xr, rr, i, C, vec);
#pragma unroll
        for (int k = 0; k < Vec<T>::N; ++k) s += v.v[k];
      }
      mean = warp_sum(s) / float(C);
    }
    float ss = 0.f;  // sum of squared deviations (LayerNorm) or squares (RMSNorm)
    QT_ROW_LOOP(i) {
      Vec<T> v;
      load_adding(v, xr, kRms ? rr : nullptr, i, C, vec);  // LayerNorm added in its mean pass
#pragma unroll
      for (int k = 0; k < Vec<T>::N; ++k) {
        float d = i + k < C ? v.v[k] - mean : 0.f;
        ss += d * d;
      }
    }
    float rstd = rsqrtf(warp_sum(ss) / float(C) + eps);
    QT_ROW_LOOP(i) {
      Vec<T> v;
      v.load(xr, i, C, vec);
#pragma unroll
      for (int k = 0; k < Vec<T>::N; ++k) {
        int64_t c = i + k < C ? i + k : 0;
        float y = (v.v[k] - mean) * rstd * w.ld(c);
        v.v[k] = kRms ? y : y + b.ld(c);
      }
      v.store(out + r * C, i, C, vec);
    }
    if (lane == 0) {
      if (mean_out) mean_out[r] = mean;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }
}

// Few rows (a decode step: one per sequence): one block per row, the row
// held in registers (kVecs vectors per thread) and reduced over the block.
// A warp per row would walk a 4096-wide row in 16 dependent steps, three
// times: 11.5 us per LLaMA-7B norm at M = 1, where this takes a read's time.
constexpr int kRowThreads = kNormRowThreads;

template <class T, bool kRms, int kVecs>
__global__ void __launch_bounds__(kRowThreads) norm_forward_row_kernel(T* out, float* mean_out, float* rstd_out, T* x,
                                                                      const T* res, FloatPtr w, FloatPtr b, int64_t C,
                                                                      float eps, bool vec) {
  __shared__ float red[32];
  pdl_entry();  // launched with PDL (a decode step's norm): see forward_t
  const int64_t r = blockIdx.x;
  T* xr = x + r * C;
  Vec<T> v[kVecs];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t i = (int64_t(j) * kRowThreads + threadIdx.x) * Vec<T>::N;
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) v[j].v[k] = 0.f;
    if (i < C) load_adding(v[j], xr, res ? res + r * C : nullptr, i, C, vec);
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) s += v[j].v[k];
  }
  const float mean = kRms ? 0.f : block_sum(s, red) / float(C);
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t i = (int64_t(j) * kRowThreads + threadIdx.x) * Vec<T>::N;
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) {
      const float d = i + k < C ? v[j].v[k] - mean : 0.f;
      ss += d * d;
    }
  }
  const float rstd = rsqrtf(block_sum(ss, red) / float(C) + eps);
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t i = (int64_t(j) * kRowThreads + threadIdx.x) * Vec<T>::N;
    if (i >= C) continue;
#pragma unroll
    for (int k = 0; k < Vec<T>::N; ++k) {
      const int64_t c = i + k < C ? i + k : 0;
      const float y = (v[j].v[k] - mean) * rstd * w.ld(c);
      v[j].v[k] = kRms ? y : y + b.ld(c);
    }
    v[j].store(out + r * C, i, C, vec);
  }
  if (threadIdx.x == 0) {
    if (mean_out) mean_out[r] = mean;
    if (rstd_out) rstd_out[r] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w
// (RMSNorm: no mean(g) term, and xhat = x * rstd).
// dw/db partials: with kPerWarp every warp sums into its own rows of shared
// memory, where each column belongs to one lane, so plain adds do (a
// shared-memory atomic per element made this kernel 10x slower than its
// memory traffic); the block then adds the warps' rows. Rows too wide for
// kWarps copies share one row with atomics.
// The rows are stored transposed by vector slot (acc_slot): a lane owns
// Vec::N adjacent columns, so column-major lanes 8 apart would share a bank
// (8-way conflicts on every add: 93 us for a GPT-2-medium 8192 x 1024 row
// set on an H200, 5x its traffic); slot-major, the lanes' k-th elements are
// adjacent words.
template <class T>
__device__ __forceinline__ int64_t acc_slot(int64_t c, int64_t S) {
  return (c % Vec<T>::N) * S + c / Vec<T>::N;
}

template <class T, bool kRms, bool kPerWarp>
__global__ void norm_backward_kernel(T* dx, float* dw, float* db, const T* dout, const T* x, FloatPtr w,
                                     const float* mean_in, const float* rstd_in, int64_t N, int64_t C, bool vec,
                                     bool accumulate) {
  extern __shared__ float acc[];  // per copy: [N*S] dw partials, then [N*S] db partials (acc_slot order)
  const int64_t S = (C + Vec<T>::N - 1) / Vec<T>::N, row = S * Vec<T>::N;
  const int nacc = (dw ? 1 : 0) + (db ? 1 : 0);
  const int copies = kPerWarp ? kWarps : 1;
  for (int64_t i = threadIdx.x; i < copies * nacc * row; i += blockDim.x) acc[i] = 0.f;
  __syncthreads();
  float* mine = acc + (kPerWarp ? int64_t(threadIdx.x >> 5) * nacc * row : 0);
  float* acc_w = dw ? mine : nullptr;
  float* acc_b = db ? mine + (dw ? row : 0) : nullptr;
  int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5); r < N; r += int64_t(gridDim.x) * kWarps) {
    const T* xr = x + r * C;
    const T* gr = dout + r * C;
    float mean = kRms ? 0.f : mean_in[r];
    float rstd = rstd_in[r];
    float sg = 0.f, sgx = 0.f;
    QT_ROW_LOOP(i) {
      Vec<T> xv, gv;
      xv.load(xr, i, C, vec);
      gv.load(gr, i, C, vec);
#pragma unroll
      for (int k = 0; k < Vec<T>::N; ++k) {
        if (i + k >= C) continue;
        float g = gv.v[k] * w.ld(i + k);
        sg += g;
        sgx += g * (xv.v[k] - mean) * rstd;
      }
    }
    float mg = kRms ? 0.f : warp_sum(sg) / float(C);
    float mgx = warp_sum(sgx) / float(C);
    QT_ROW_LOOP(i) {
      Vec<T> xv, gv;
      xv.load(xr, i, C, vec);
      gv.load(gr, i, C, vec);
#pragma unroll
      for (int k = 0; k < Vec<T>::N; ++k) {
        int64_t c = i + k < C ? i + k : 0;
        float xhat = (xv.v[k] - mean) * rstd;
        float g = gv.v[k] * w.ld(c);
        if (i + k < C) {
          const int64_t j = k * S + i / Vec<T>::N;  // acc_slot(i + k), i a multiple of N
          if constexpr (kPerWarp) {
            if (acc_w) acc_w[j] += gv.v[k] * xhat;
            if (acc_b) acc_b[j] += gv.v[k];
          } else {
            if (acc_w) atomicAdd(acc_w + j, gv.v[k] * xhat);
            if (acc_b) atomicAdd(acc_b + j, gv.v[k]);
          }
        }
        xv.v[k] = rstd * (g - mg - xhat * mgx);
      }
      if (accumulate) {  // dx += the norm's gradient, rounded once
        Vec<T> prev;
        prev.load(dx + r * C, i, C, vec);
#pragma unroll
        for (int k = 0; k < Vec<T>::N; ++k) xv.v[k] += prev.v[k];
      }
      xv.store(dx + r * C, i, C, vec);
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < nacc * C; c += blockDim.x) {
    const bool is_w = dw && c < C;
    const int64_t col = is_w || !dw ? c : c - C;
    const int64_t j = (is_w || !dw ? 0 : row) + acc_slot<T>(col, S);
    float sum = 0.f;
    for (int k = 0; k < copies; ++k) sum += acc[int64_t(k) * nacc * row + j];
    atomicAdd((is_w ? dw : db) + col, sum);
  }
}

int norm_grid(int64_t N) {
  int64_t blocks = (N + kWarps - 1) / kWarps;
  return int(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(Context::get().sm_count()) * 4)));
}

// Shapes, lengths and devices were checked by the public op (kernels/cpu/norm.cpp)
// before the dispatch; here only the dtypes this kernel takes.
void check_rows(const Tensor& x, const Tensor& other, const char* what) {
  QT_CHECK(other.dtype() == x.dtype(), std::string(what) + ": expected " + dtype_name(x.dtype()) + ", got " +
                                           dtype_name(other.dtype()));
}

float* stat_ptr(const Tensor& t, const char* what) {
  if (!t.defined()) return nullptr;
  check_cuda_dtype(t, DType::F32, what);
  return t.f32();
}

// res defined: x += res first (the fused residual add), in place.
template <class T, bool kRms>
void forward_t(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps, Tensor res = {}) {
  int64_t C = x.size(-1), N = x.numel() / C;
  const T* pres = res.defined() ? static_cast<const T*>(res.raw()) : nullptr;
  bool vec = vec_ok<T>(C, {x.raw(), out.raw(), pres});
  // Fewer rows than SMs (decode steps): a block per row, when the row fits its registers.
  if (const int vecs = norm_row_vecs(N, C, Vec<T>::N)) {
    auto kernel = vecs == 1   ? norm_forward_row_kernel<T, kRms, 1>
                  : vecs == 2 ? norm_forward_row_kernel<T, kRms, 2>
                  : vecs == 4 ? norm_forward_row_kernel<T, kRms, 4>
                              : norm_forward_row_kernel<T, kRms, 6>;
    // With PDL: at a decode step's few rows the launch gap is as long as the norm.
    launch_pdl(pdl_small(N), kernel, unsigned(N), unsigned(kRowThreads), 0, static_cast<T*>(out.raw()),
               stat_ptr(mean, "norm mean"), stat_ptr(rstd, "norm rstd"), static_cast<T*>(x.raw()), pres,
               fptr(w, "norm w"), kRms ? FloatPtr{nullptr, DType::F32} : fptr(b, "norm b"), C, eps, vec);
    CUDA_CHECK_LAUNCH("norm_forward_row");
    return;
  }
  norm_forward_kernel<T, kRms><<<norm_grid(N), 32 * kWarps, 0, stream()>>>(
      static_cast<T*>(out.raw()), stat_ptr(mean, "norm mean"), stat_ptr(rstd, "norm rstd"), static_cast<T*>(x.raw()),
      pres, fptr(w, "norm w"), kRms ? FloatPtr{nullptr, DType::F32} : fptr(b, "norm b"), N, C, eps, vec);
  CUDA_CHECK_LAUNCH("norm_forward");
}

template <class T, bool kRms>
void backward_t(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd,
                bool accumulate) {
  int64_t C = x.size(-1), N = x.numel() / C;
  float* pdw = dw.defined() ? (check_cuda_dtype(dw, DType::F32, "norm dw"), dw.f32()) : nullptr;
  float* pdb = db.defined() ? (check_cuda_dtype(db, DType::F32, "norm db"), db.f32()) : nullptr;
  const int64_t padded = (C + Vec<T>::N - 1) / Vec<T>::N * Vec<T>::N;  // a row in acc_slot order
  const size_t row_bytes = size_t((pdw ? padded : 0) + (pdb ? padded : 0)) * sizeof(float);
  const bool per_warp = row_bytes * kWarps <= Context::get().max_smem_optin();
  const size_t smem = per_warp ? row_bytes * kWarps : row_bytes;
  QT_CHECK(smem <= Context::get().max_smem_optin(), "norm backward: row too wide for shared memory");
  auto kernel = per_warp ? norm_backward_kernel<T, kRms, true> : norm_backward_kernel<T, kRms, false>;
  if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  bool vec = vec_ok<T>(C, {x.raw(), dout.raw(), dx.raw()});
  // With weight gradients every block zeroes, sums and adds out its partial rows: one wave of
  // resident blocks (a second, partial wave would be that fixed cost again for few rows).
  int grid = norm_grid(N);
  if (smem > 0) {
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * kWarps, smem));
    grid = std::min(grid, std::max(1, per_sm) * Context::get().sm_count());
  }
  kernel<<<grid, 32 * kWarps, smem, stream()>>>(
      static_cast<T*>(dx.raw()), pdw, pdb, static_cast<const T*>(dout.raw()), static_cast<const T*>(x.raw()),
      fptr(w, "norm w"), kRms ? nullptr : stat_ptr(mean, "norm mean"), stat_ptr(rstd, "norm rstd"), N, C, vec,
      accumulate);
  CUDA_CHECK_LAUNCH("norm_backward");
}

// Activations are BF16 in the models; F32 is accepted too (tests, fp32 runs).
template <bool kRms, class F>
void by_dtype(const Tensor& x, F&& f) {
  if (x.dtype() == DType::BF16)
    f(bf16{});
  else if (x.dtype() == DType::F32)
    f(float{});
  else
    QT_CHECK(false, std::string("norm: unsupported activation dtype ") + dtype_name(x.dtype()));
}

// The forward ops: the norm of x, after x += r when r is defined (the fused residual add).
template <bool kRms>
void forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor r, Tensor w, Tensor b, float eps, const char* op) {
  by_dtype<kRms>(x, [&](auto t) {
    using T = decltype(t);
    check_rows(x, out, (std::string(op) + " out").c_str());
    if (r.defined()) check_rows(x, r, (std::string(op) + " r").c_str());
    forward_t<T, kRms>(out, mean, rstd, x, w, b, eps, r);
  });
}

}  // namespace

void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
  forward<false>(out, mean, rstd, x, Tensor(), w, b, eps, "layernorm_forward");
}

void add_layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor r, Tensor w, Tensor b, float eps) {
  forward<false>(out, mean, rstd, x, r, w, b, eps, "add_layernorm_forward");
}

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, float eps) {
  forward<true>(out, Tensor(), rstd, x, Tensor(), w, Tensor(), eps, "rmsnorm_forward");
}

void add_rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps) {
  forward<true>(out, Tensor(), rstd, x, r, w, Tensor(), eps, "add_rmsnorm_forward");
}

void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd,
                        bool accumulate_dx) {
  by_dtype<false>(x, [&](auto t) {
    using T = decltype(t);
    check_rows(x, dx, "layernorm_backward dx");
    check_rows(x, dout, "layernorm_backward dout");
    backward_t<T, false>(dx, dw, db, dout, x, w, mean, rstd, accumulate_dx);
  });
}

void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd, bool accumulate_dx) {
  by_dtype<true>(x, [&](auto t) {
    using T = decltype(t);
    check_rows(x, dx, "rmsnorm_backward dx");
    check_rows(x, dout, "rmsnorm_backward dout");
    backward_t<T, true>(dx, dw, Tensor(), dout, x, w, Tensor(), rstd, accumulate_dx);
  });
}

}  // namespace qtrain::cuda
