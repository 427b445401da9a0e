// 16-byte vector access to a row of BF16 or F32 values, converted to floats.
// Rows are walked by a warp in strides of 32 vectors; when a row is not
// 16-byte aligned or its length not a multiple of the vector width, the same
// loop falls back to bounds-checked scalar loads.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace qtrain::cuda {

// The 8 BF16 values of one 16-byte load as floats (a BF16 is the top half of its float).
__device__ __forceinline__ void bf16x8_to_f32(const int4& q, float (&f)[8]) {
  const uint32_t w[4] = {uint32_t(q.x), uint32_t(q.y), uint32_t(q.z), uint32_t(q.w)};
#pragma unroll
  for (int k = 0; k < 4; ++k) f[2 * k] = __uint_as_float(w[k] << 16), f[2 * k + 1] = __uint_as_float(w[k] & 0xFFFF0000u);
}

template <class T>
struct Vec {
  static constexpr int N = 16 / int(sizeof(T));
  float v[N];

  __device__ __forceinline__ void load(const T* row, int64_t i, int64_t C, bool vec) {
    if (vec) {
      int4 raw = *reinterpret_cast<const int4*>(row + i);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = to_f(e[k]);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] = i + k < C ? to_f(row[i + k]) : 0.f;
    }
  }

  __device__ __forceinline__ void store(T* row, int64_t i, int64_t C, bool vec) const {
    if (vec) {
      int4 raw;
      T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int k = 0; k < N; ++k) e[k] = from_f(v[k]);
      *reinterpret_cast<int4*>(row + i) = raw;
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k)
        if (i + k < C) row[i + k] = from_f(v[k]);
    }
  }

  // v += r, each sum rounded to T as a stored T would be (the residual add before a norm).
  __device__ __forceinline__ void add_rounded(const Vec& r) {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = to_f(from_f(v[k] + r.v[k]));
  }

  static __device__ __forceinline__ float to_f(float x) { return x; }
  static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ T from_f(float x) {
    if constexpr (sizeof(T) == 2)
      return __float2bfloat16_rn(x);
    else
      return x;
  }
};

// Whether rows of length C starting at these pointers allow 16-byte access.
template <class T>
inline bool vec_ok(int64_t C, std::initializer_list<const void*> ptrs) {
  if (C % Vec<T>::N != 0) return false;
  for (const void* p : ptrs)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace qtrain::cuda
