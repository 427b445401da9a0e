// HQQ codes to a dense BF16/F32 matrix on the GPU: one thread per packed byte
// (2 or 4 weights). Each weight is (q - zero) * scale with the CPU reference's
// two rounded F32 operations (kernels/quant/hqq.cpp), so the F32 value is the
// same bits before the store rounds it to out's dtype.
#include "kernels/cuda/common.cuh"
#include "kernels/hqq_dequant.h"

namespace qtrain::cuda {
namespace {

template <int kBits>
__global__ void hqq_dequant_kernel(FloatPtr out, const uint8_t* codes, const float* scale, const float* zero,
                                   int64_t nbytes) {
  constexpr int kPer = 8 / kBits, kMask = (1 << kBits) - 1;
  QT_GRID_STRIDE(b, nbytes) {
    const uint8_t byte = codes[b];
    const int64_t i0 = b * kPer;  // groups of 64 run over the flat matrix, as in hqq
    const int64_t g = i0 / 64;
    const float s = scale[g], z = zero[g];
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int q = (byte >> (kBits * (kPer - 1 - k))) & kMask;
      out.st(i0 + k, __fmul_rn(__fsub_rn(float(q), z), s));
    }
  }
}

}  // namespace

void dequantize_hqq(Tensor out, Tensor codes, Tensor scale, Tensor zero, int bits) {
  const int64_t nbytes = int64_t(codes.nbytes());
  if (!nbytes) return;
  const FloatPtr o = fptr(out, "dequantize_hqq out");
  const auto* src = static_cast<const uint8_t*>(codes.raw());
  const auto* s = static_cast<const float*>(scale.raw());
  const auto* z = static_cast<const float*>(zero.raw());
  if (bits == 4)
    hqq_dequant_kernel<4><<<grid_for(nbytes, 256), 256, 0, stream()>>>(o, src, s, z, nbytes);
  else
    hqq_dequant_kernel<2><<<grid_for(nbytes, 256), 256, 0, stream()>>>(o, src, s, z, nbytes);
  CUDA_CHECK_LAUNCH("dequantize_hqq");
}

}  // namespace qtrain::cuda
