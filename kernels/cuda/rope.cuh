// RoPE's pieces shared by rope.cu and the decode attention that rotates its q
// and new keys itself (attention_cached.cu, attention_cached_rope): one
// definition of the rotation and one table, so that both give the same bits.
#pragma once
#include <cuda_runtime.h>

namespace qtrain::cuda {

// One pair (x1, x2) = (x[i], x[i + D/2]) rotated by (c, s) = table[pos * D/2 + i].
__device__ __forceinline__ float2 rotate(float x1, float x2, float c, float s) {
  return make_float2(x1 * c - x2 * s, x2 * c + x1 * s);
}

// (cos, sin) of every (pos < T, i < D/2) at (D, theta), built on the stream when it must grow
// (rope.cu says when); valid until the next call with another (D, theta).
const float2* rope_table(int T, int D, float theta);

}  // namespace qtrain::cuda
