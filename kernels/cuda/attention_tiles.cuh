// Building blocks of the flash-attention kernels: 16x16x16 BF16 tensor-core
// products (wmma) between shared-memory tiles, and global<->shared tile copies.
// Every intermediate lives in shared memory, so softmax and masking can be
// plain per-element code that never depends on fragment layouts.
#pragma once
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

namespace qtrain::cuda::attn {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int kTile = 64;     // query rows and key rows per tile
constexpr int kWarps = 4;     // warp w owns rows [16w, 16w + 16) of a 64-row tile
constexpr int kThreads = 32 * kWarps;
constexpr int kPadH = 8;      // BF16 row padding (16 bytes): spreads rows over banks
constexpr int kPadF = 4;      // F32 row padding

using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// acc[j] += A[16, 16*ksteps] @ B[:, 16j : 16j+16] for j < NT, one warp, each A
// fragment loaded once per k-step. A is row-major ([m][k], lda) or col-major
// ([k][m]); B row-major ([k][n], ldb) or col-major ([n][k]).
template <class LayoutA, class LayoutB, int NT>
__device__ __forceinline__ void warp_mma_regs(Acc (&acc)[NT], const bf16* A, int lda, const bf16* B, int ldb,
                                              int ksteps) {
  constexpr bool a_row = std::is_same_v<LayoutA, wmma::row_major>;
  constexpr bool b_row = std::is_same_v<LayoutB, wmma::row_major>;
  for (int kk = 0; kk < ksteps; ++kk) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LayoutA> a;
    wmma::load_matrix_sync(a, A + (a_row ? 16 * kk : 16 * kk * lda), lda);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LayoutB> b;
      wmma::load_matrix_sync(b, b_row ? B + 16 * kk * ldb + 16 * j : B + 16 * j * ldb + 16 * kk, ldb);
      wmma::mma_sync(acc[j], a, b, acc[j]);
    }
  }
}

template <int NT>
__device__ __forceinline__ void fill_frags(Acc (&acc)[NT], float v) {
#pragma unroll
  for (int j = 0; j < NT; ++j) wmma::fill_fragment(acc[j], v);
}

template <int NT>
__device__ __forceinline__ void load_frags(Acc (&acc)[NT], const float* C, int ldc) {
#pragma unroll
  for (int j = 0; j < NT; ++j) wmma::load_matrix_sync(acc[j], C + 16 * j, ldc, wmma::mem_row_major);
}

template <int NT>
__device__ __forceinline__ void store_frags(float* C, int ldc, const Acc (&acc)[NT]) {
#pragma unroll
  for (int j = 0; j < NT; ++j) wmma::store_matrix_sync(C + 16 * j, acc[j], ldc, wmma::mem_row_major);
}

// Copies kTile rows of D BF16 values into shared memory (row stride D + kPadH),
// 16 bytes per thread per step; rows at or past `valid` are zero-filled.
// Global row r starts at src + r * stride (elements).
template <int D>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int valid) {
  constexpr int kVecs = D / 8;
  for (int idx = threadIdx.x; idx < kTile * kVecs; idx += kThreads) {
    int r = idx / kVecs, c = (idx % kVecs) * 8;
    int4 v = make_int4(0, 0, 0, 0);
    if (r < valid) v = *reinterpret_cast<const int4*>(src + r * stride + c);
    *reinterpret_cast<int4*>(dst + r * (D + kPadH) + c) = v;
  }
}

}  // namespace qtrain::cuda::attn
