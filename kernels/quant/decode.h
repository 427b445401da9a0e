// Element decoding of the packed formats, one definition for the CPU
// reference and the CUDA kernels (QT_HD: host and device). Products and sums
// are rounded one at a time (no fused multiply-add on the GPU), so the GPU's
// F32 values are the CPU's bit for bit, and the CPU's are bitsandbytes'.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define QT_HD __host__ __device__ __forceinline__
#else
#define QT_HD inline
#endif

namespace qtrain::quant {

QT_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
QT_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// The 4-bit code index of flat element i: the first element of a byte is its high nibble.
QT_HD uint8_t nibble(const uint8_t* packed, int64_t i) {
  const uint8_t b = packed[i >> 1];
  return (i & 1) ? uint8_t(b & 0xF) : uint8_t(b >> 4);
}

// A double-quantized absmax: dynamic_map[q] * absmax2 (its block of 256), plus the offset.
QT_HD float dq_absmax(float map_q, float absmax2, float offset) { return add_rn(mul_rn(map_q, absmax2), offset); }

// bitsandbytes' constant for 1/127 (int8 scales).
constexpr float kInt8Inv127 = 7.874015718698502e-3f;

// bitsandbytes' int8 dequantization: q * absmax / 127.
QT_HD float int8_value(int8_t q, float row_absmax) { return mul_rn(mul_rn(float(q), row_absmax), kInt8Inv127); }

}  // namespace qtrain::quant
