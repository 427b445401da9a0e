// Rotary position embedding, HF rotate_half convention, in place. One thread
// per (row, pair i): x[i], x[i + D/2] rotate by angle pos * inv_freq[i], with
// inv_freq and the angle computed in F32 exactly as HF does (precise sincosf:
// angles reach thousands of radians, where fast intrinsics lose accuracy).
//
// The (cos, sin) of every (pos, i) go into a table once per (T, D, theta) and
// are reused by every layer, q and k, forward and backward: computing powf and
// a precise sincosf per element made RoPE compute-bound (~3x its memory time).
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/rope.h"
#include "kernels/attention.h"
#include "kernels/device.h"

namespace qtrain::cuda {
namespace {

__global__ void rope_table_kernel(float2* table, int T, int D, float theta) {
  const int half = D / 2;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < T * half; idx += gridDim.x * blockDim.x) {
    int pos = idx / half, i = idx % half;
    float inv_freq = 1.0f / powf(theta, float(2 * i) / float(D));
    float s, c;
    sincosf(float(pos) * inv_freq, &s, &c);
    table[idx] = make_float2(c, s);
  }
}


// sign = +1 forward (rotate by +angle), -1 backward (the transpose).
// pos_dev, when set, holds the first position (a replayed decode step).
__global__ void rope_kernel(FloatPtr x, const float2* table, int64_t rows, int T, int H, int D, int pos0,
                            const int32_t* pos_dev, float sign) {
  if (pos_dev) pos0 = *pos_dev;
  int half = D / 2;
  int64_t n = rows * half;
  QT_GRID_STRIDE(idx, n) {
    int64_t row = idx / half;
    int i = int(idx % half);
    int pos = pos0 + int((row / H) % T);
    float2 cs = table[pos * half + i];
    float c = cs.x, s = sign * cs.y;
    int64_t j = row * D + i;
    const float2 r = rope_rotate(x.ld(j), x.ld(j + half), c, s);
    x.st(j, r.x);
    x.st(j + half, r.y);
  }
}

// BF16, D % 16 == 0, 16-byte aligned rows: a thread takes 8 consecutive pairs
// (one 16-byte load from each half and four 16-byte table loads), so RoPE
// runs at copy speed instead of ~1/4 of it with 2-byte accesses. The math per
// element is the scalar kernel's (rope_rotate), so the results are the same bits.
// a, b: pairs i0 .. i0 + 7 (x[i], x[i + D/2]); cs4: their (cos, sin) entries.
__device__ __forceinline__ void rotate8(int4& a, int4& b, const float4* cs4, float sign) {
  bf16* ea = reinterpret_cast<bf16*>(&a);
  bf16* eb = reinterpret_cast<bf16*>(&b);
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const float4 cs = __ldg(cs4 + q);  // (cos, sin) of pairs 2q and 2q + 1
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float c = h ? cs.z : cs.x, s = sign * (h ? cs.w : cs.y);
      const int e = 2 * q + h;
      const float2 r = rope_rotate(__bfloat162float(ea[e]), __bfloat162float(eb[e]), c, s);
      ea[e] = __float2bfloat16_rn(r.x);
      eb[e] = __float2bfloat16_rn(r.y);
    }
  }
}

// The vectorised RoPE: q [B,T,Hq,D] and k [B,T,Hkv,D] in one grid (q's work
// items, then k's; a single tensor is q with no k), and for a decode pass the
// cache append as well: rotated k rows also to kc, v's 16-byte chunks to vc,
// both [B,Tc,Hkv,D] at pos0 + t.
struct RopeQkv {
  bf16 *q, *k, *kc, *vc;  // k: null for one tensor; kc, vc: null outside decoding
  const bf16* v;
  int64_t rows_q, rows_k, Tc;
  int T, Hq, Hkv, D;
};
__global__ void rope_qkv_bf16x8_kernel(RopeQkv a, const float2* table, int pos0, const int32_t* pos_dev, float sign) {
  pdl_entry();  // small launches go with PDL (rope_qkv)
  if (pos_dev) pos0 = *pos_dev;
  const int half = a.D / 2, per_row = half / 8, chunks = a.D / 8;
  const int64_t nq = a.rows_q * per_row, nqk = nq + a.rows_k * per_row;
  const int64_t n = nqk + (a.vc ? a.rows_k * chunks : 0);
  QT_GRID_STRIDE(idx, n) {
    if (idx < nqk) {
      const bool is_k = idx >= nq;
      const int64_t j = is_k ? idx - nq : idx;
      const int H = is_k ? a.Hkv : a.Hq;
      bf16* x = is_k ? a.k : a.q;
      const int64_t row = j / per_row;
      const int i0 = int(j - row * per_row) * 8;
      const int t = int((row / H) % a.T), pos = pos0 + t;
      int4* lo = reinterpret_cast<int4*>(x + row * a.D + i0);
      int4* hi = reinterpret_cast<int4*>(x + row * a.D + half + i0);
      int4 va = *lo, vb = *hi;
      rotate8(va, vb, reinterpret_cast<const float4*>(table + int64_t(pos) * half + i0), sign);
      *lo = va;
      *hi = vb;
      if (is_k && a.kc) {  // row (b, t, h) of k -> cache row (b, pos, h)
        const int64_t b = row / (int64_t(H) * a.T), h = row % H;
        bf16* dst = a.kc + ((b * a.Tc + pos) * H + h) * a.D;
        *reinterpret_cast<int4*>(dst + i0) = va;
        *reinterpret_cast<int4*>(dst + half + i0) = vb;
      }
    } else {
      const int64_t j = idx - nqk, row = j / chunks, c = j - row * chunks;
      const int64_t b = row / (int64_t(a.Hkv) * a.T), t = (row / a.Hkv) % a.T, h = row % a.Hkv;
      *reinterpret_cast<int4*>(a.vc + ((b * a.Tc + pos0 + t) * a.Hkv + h) * a.D + 8 * c) =
          *reinterpret_cast<const int4*>(a.v + row * a.D + 8 * c);
    }
  }
}

bool aligned16(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

// q (and k, and for decoding kc, vc, v, when defined) in one launch when every tensor is BF16 with
// 16-byte rows and D % 16 == 0 (the vectorised kernel's layout); false when the caller must take
// the scalar kernel or the separate ops.
bool rope_qkv(Tensor q, Tensor k, Tensor v, Tensor kc, Tensor vc, float theta, SeqPos pos, float sign) {
  const int64_t B = q.size(0), T = q.size(1), D = q.size(3);
  for (const Tensor* t : {&q, &k, &v, &kc, &vc})
    if (t->defined() && (t->dtype() != DType::BF16 || !aligned16(*t))) return false;
  if (D % 16 != 0) return false;
  RopeQkv a{static_cast<bf16*>(q.raw()), k.defined() ? static_cast<bf16*>(k.raw()) : nullptr,
            kc.defined() ? static_cast<bf16*>(kc.raw()) : nullptr, vc.defined() ? static_cast<bf16*>(vc.raw()) : nullptr,
            v.defined() ? static_cast<const bf16*>(v.raw()) : nullptr,
            B * T * q.size(2), k.defined() ? B * T * k.size(2) : 0, kc.defined() ? kc.size(1) : 0,
            int(T), int(q.size(2)), k.defined() ? int(k.size(2)) : 1, int(D)};
  const int64_t n = (a.rows_q + a.rows_k) * (D / 16) + (a.vc ? a.rows_k * (D / 8) : 0);
  if (!n) return true;
  const float2* table = rope_table(pos.extent(int(T)), int(D), theta);
  const unsigned blocks = unsigned(grid_for(n, 256));
  launch_pdl(pdl_small(blocks), rope_qkv_bf16x8_kernel, blocks, 256u, 0, a, table, pos.first, pos.dev, sign);
  CUDA_CHECK_LAUNCH("rope_qkv");
  return true;
}

void rope(Tensor x, float theta, SeqPos pos, float sign, const char* what) {
  if (rope_qkv(x, {}, {}, {}, {}, theta, pos, sign)) return;
  const int pos0 = pos.first;
  int64_t T = x.size(1), H = x.size(2), D = x.size(3);  // shapes checked by the public op (kernels/cpu/rope.cpp)
  int64_t rows = x.numel() / D;
  int64_t n = rows * (D / 2);
  if (!n) return;
  const float2* table = rope_table(pos.extent(int(T)), int(D), theta);
  rope_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(x, what), table, rows, int(T), int(H), int(D), pos0, pos.dev, sign);
  CUDA_CHECK_LAUNCH(what);
}

}  // namespace

// The table for positions [0, T) at (D, theta), rebuilt only when it must grow
// or (D, theta) change: an entry depends on its own (pos, i) alone, so a longer
// table serves shorter sequences, and a decode step (T = 1 at pos0 = 1000)
// reuses the prefill's table. The scratch slot is RoPE's alone, and every op
// runs in order on the one stream.
const float2* rope_table(int T, int D, float theta) {
  static int cached_T = -1, cached_D = -1;
  static float cached_theta = 0.f;
  static const void* cached_ptr = nullptr;
  if (D == cached_D && theta == cached_theta) T = std::max(T, cached_T);
  const size_t bytes = size_t(T) * size_t(D / 2) * sizeof(float2);
  auto* table = static_cast<float2*>(Context::get().scratch(Scratch::Rope, bytes));
  if (T != cached_T || D != cached_D || theta != cached_theta || table != cached_ptr) {
    if (D != cached_D || theta != cached_theta) cuda_bump_buffer_generation();  // other entries, same pointer
    rope_table_kernel<<<grid_for(int64_t(T) * (D / 2), 256), 256, 0, stream()>>>(table, T, D, theta);
    CUDA_CHECK_LAUNCH("rope_table");
    cached_T = T, cached_D = D, cached_theta = theta, cached_ptr = table;
  }
  return table;
}

void rope_forward(Tensor x, float theta, SeqPos pos) { rope(x, theta, pos, 1.f, "rope_forward"); }
void rope_backward(Tensor dx, float theta, int pos0) { rope(dx, theta, pos0, -1.f, "rope_backward"); }

void rope_qk_forward(Tensor q, Tensor k, float theta, SeqPos pos) {
  if (rope_qkv(q, k, {}, {}, {}, theta, pos, 1.f)) return;
  rope(q, theta, pos, 1.f, "rope_qk_forward q");
  rope(k, theta, pos, 1.f, "rope_qk_forward k");
}

void rope_qk_backward(Tensor dq, Tensor dk, float theta, int pos0) {
  if (rope_qkv(dq, dk, {}, {}, {}, theta, pos0, -1.f)) return;
  rope(dq, theta, pos0, -1.f, "rope_qk_backward dq");
  rope(dk, theta, pos0, -1.f, "rope_qk_backward dk");
}

void rope_append_kv(Tensor q, Tensor k, Tensor v, Tensor kc, Tensor vc, float theta, SeqPos pos) {
  if (rope_qkv(q, k, v, kc, vc, theta, pos, 1.f)) return;
  // Qualified: argument-dependent lookup also finds the public ops (checked already).
  cuda::rope_qk_forward(q, k, theta, pos);
  cuda::kv_cache_write(kc, k, pos);
  cuda::kv_cache_write(vc, v, pos);
}

}  // namespace qtrain::cuda
