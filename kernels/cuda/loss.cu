// LM head fused with softmax cross-entropy, chunked over rows. Per chunk:
//   logits[R,V] (F32) = x_chunk @ w^T                    (cuBLASLt)
//   per row: lse, loss, and dlogits = (softmax - onehot) * grad_scale,
//            written as BF16 over the first half of the same F32 row
//   dx_chunk = dlogits @ w ;  dw += dlogits^T @ x_chunk   (cuBLASLt)
// so only one [R, V] F32 buffer exists, never [N, V].
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_lt.cuh"
#include "kernels/loss.h"

namespace qtrain::cuda {
namespace {

constexpr int kThreads = 1024;

// One block per row. `row` has ld floats (ld % 8 == 0, so 16-byte aligned float4s); the BF16
// gradient row it becomes has ld*2 elements (same bytes). A thread takes four values a load:
// with one float a load, a 1024-thread block kept too few bytes in flight to read at DRAM speed
// (1.9 ms for GPT-2's 8192 x 50257 logits on an H200, 2.2x their traffic).
// Online softmax over one read for max and sum (the running sum rescaled when the max grows),
// then a second read that writes the gradient: tile by tile, each tile's F32 values are read
// before a barrier, then its BF16 results written, which only overlap F32 values already read.
__global__ void __launch_bounds__(kThreads) ce_rows_kernel(float* logits, int64_t ld, const int32_t* targets,
                                                           int64_t V, float grad_scale, double* loss_sum) {
  __shared__ float red[32];
  __shared__ float target_logit;
  float* row = logits + int64_t(blockIdx.x) * ld;
  bf16* grow = reinterpret_cast<bf16*>(row);
  const float4* row4 = reinterpret_cast<const float4*>(row);
  const int32_t t = targets[blockIdx.x];
  const bool ignored = t < 0 || t >= V;  // kIgnoreIndex (and anything else out of range)
  if (threadIdx.x == 0) target_logit = ignored ? 0.f : row[t];
  const int64_t V4 = V / 4;  // whole float4s; the last V % 4 values one by one
  float tm = -INFINITY, ts = 0.f;
#pragma unroll 4
  for (int64_t j = threadIdx.x; j < V4; j += blockDim.x) {
    const float4 q = row4[j];
    const float mx = fmaxf(fmaxf(q.x, q.y), fmaxf(q.z, q.w));
    if (mx > tm) {
      ts = tm == -INFINITY ? 0.f : ts * expf(tm - mx);
      tm = mx;
    }
    ts += expf(q.x - tm) + expf(q.y - tm) + expf(q.z - tm) + expf(q.w - tm);
  }
  for (int64_t i = V4 * 4 + threadIdx.x; i < V; i += blockDim.x) {
    const float v = row[i];
    if (v > tm) {
      ts = tm == -INFINITY ? 1.f : ts * expf(tm - v) + 1.f;
      tm = v;
    } else {
      ts += expf(v - tm);
    }
  }
  const float m = block_max(tm, red);
  float s = tm == -INFINITY ? 0.f : ts * expf(tm - m);
  s = block_sum(s, red);  // its barriers also publish target_logit
  const float lse = m + logf(s);
  const float scale = ignored ? 0.f : grad_scale;
  auto grad = [&](float v, int64_t i) { return __float2bfloat16_rn((expf(v - lse) - (i == t ? 1.f : 0.f)) * scale); };
  for (int64_t base = 0; base < V4; base += blockDim.x) {
    const int64_t j = base + threadIdx.x;
    const float4 q = j < V4 ? row4[j] : float4{0.f, 0.f, 0.f, 0.f};
    __syncthreads();
    if (j < V4) {
      const int64_t i = 4 * j;
      __nv_bfloat162 lo{grad(q.x, i), grad(q.y, i + 1)}, hi{grad(q.z, i + 2), grad(q.w, i + 3)};
      uint2 packed;
      packed.x = *reinterpret_cast<uint32_t*>(&lo);
      packed.y = *reinterpret_cast<uint32_t*>(&hi);
      *reinterpret_cast<uint2*>(grow + i) = packed;  // 8-byte aligned: ld % 8 == 0
    }
  }
  // The last V % 4 (one each for the first threads): their F32 values lie past every BF16 result
  // of the tiles, and their own BF16 slots hold values read before a barrier (at a vocabulary
  // under 8, values of the tail itself: hence the barrier between its reads and writes).
  const int64_t ti = V4 * 4 + threadIdx.x;
  const float tv = ti < V ? row[ti] : 0.f;
  __syncthreads();
  if (ti < V) grow[ti] = grad(tv, ti);
  if (threadIdx.x == 0 && !ignored) atomicAdd(loss_sum, double(lse - target_logit));
}

const bf16* as_bf16(const Tensor& t, Scratch slot) {
  if (t.dtype() == DType::BF16) return static_cast<const bf16*>(t.raw());
  void* s = Context::get().scratch(slot, size_t(t.numel()) * 2);
  convert_n(FloatPtr{s, DType::BF16}, fptr(t, "lm_head operand"), t.numel());
  return static_cast<const bf16*>(s);
}

// The vocab dimension (50257 for GPT-2) is odd, which keeps cuBLASLt off its
// fastest kernels: each vocab-sized product runs as a 64-aligned main part
// plus a small tail. `part(v0, nv)` issues the product for vocab rows [v0, v0+nv).
template <class F>
void split_vocab(int64_t V, F&& part) {
  int64_t main = V >= 64 ? V / 64 * 64 : V;
  part(int64_t(0), main, true);
  if (main < V) part(main, V - main, false);
}

}  // namespace

double lm_head_cross_entropy(Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale) {
  // Shapes and devices were checked by the public op (kernels/cpu/loss.cpp); here only the dtypes.
  int64_t C = x.size(-1), N = C ? x.numel() / C : 0, V = w.size(0);
  if (dx.defined()) {
    fptr(dx, "lm_head dx");
    QT_CHECK(dx.dtype() != DType::F16, "lm_head_cross_entropy: dx F16 is not supported");
  }
  if (dw.defined()) check_cuda_dtype(dw, DType::F32, "lm_head_cross_entropy dw");
  if (N == 0) return 0.0;
  Context& ctx = Context::get();
  cudaStream_t s = ctx.stream();
  const bf16* xb = as_bf16(x, Scratch::LossX);
  const bf16* wb = as_bf16(w, Scratch::LossW);
  int64_t ld = (V + 7) / 8 * 8;  // 32-byte aligned F32 rows (and 16-byte BF16 rows)
  // The F32 logits scratch per chunk: loss_chunk_rows (kernels/loss.h) sizes it to the batch;
  // QT_LOSS_CHUNK_MIB=n fixes it at n MiB instead (for measuring).
  static const size_t fixed = env_mib("QT_LOSS_CHUNK_MIB", 0);
  const int64_t R = loss_chunk_rows(N, V, fixed);
  float* logits = static_cast<float*>(ctx.scratch(Scratch::Loss, size_t(R) * size_t(ld) * 4));
  double* loss = static_cast<double*>(ctx.scratch(Scratch::LossSum, sizeof(double)));
  CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(double), s));
  const int32_t* tg = targets.i32();
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    int64_t rows = std::min(R, N - r0);
    const bf16* xc = xb + r0 * C;
    split_vocab(V, [&](int64_t v0, int64_t nv, bool) {
      gemm_rowmajor(logits + v0, DType::F32, ld, xc, C, false, wb + v0 * C, C, true, DType::BF16, rows, nv, C, 1.f, 0.f);
    });
    ce_rows_kernel<<<unsigned(rows), kThreads, 0, s>>>(logits, ld, tg + r0, V, grad_scale, loss);
    CUDA_CHECK_LAUNCH("lm_head_cross_entropy rows");
    const bf16* dlogits = reinterpret_cast<const bf16*>(logits);  // [rows, V], row stride 2*ld
    if (dx.defined()) {
      size_t es = dx.dtype() == DType::BF16 ? 2 : 4;
      void* dxc = static_cast<char*>(dx.raw()) + size_t(r0 * C) * es;
      split_vocab(V, [&](int64_t v0, int64_t nv, bool first) {  // K split: the tail accumulates
        gemm_rowmajor(dxc, dx.dtype(), C, dlogits + v0, 2 * ld, false, wb + v0 * C, C, false, DType::BF16, rows, C, nv,
                      1.f, first ? 0.f : 1.f);
      });
    }
    if (dw.defined())
      split_vocab(V, [&](int64_t v0, int64_t nv, bool) {
        gemm_rowmajor(dw.f32() + v0 * C, DType::F32, C, dlogits + v0, 2 * ld, true, xc, C, false, DType::BF16, nv, C,
                      rows, 1.f, 1.f);
      });
  }
  double h = 0;
  CUDA_CHECK(cudaMemcpyAsync(&h, loss, sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return h;
}

}  // namespace qtrain::cuda
