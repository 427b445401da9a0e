// Asymmetric tiled 4-bit dequantization on the GPU (QA-BLoRA's base); the
// reference is kernels/cpu/asym4.cpp. One thread per output element.
#include "kernels/cuda/common.cuh"
#include "kernels/asym4.h"

namespace qtrain::cuda {
namespace {

__global__ void asym4_dequant_kernel(FloatPtr out, const uint8_t* codes, const float* scale, const float* zero,
                                     Asym4Tiles t, int64_t row0, int64_t n) {
  const int64_t tin = t.in / t.tile_in;
  QT_GRID_STRIDE(e, n) {
    const int64_t o = row0 + e / t.in, i = e % t.in;
    const uint8_t b = codes[o * (t.in / 2) + i / 2];
    const int q = (i & 1) ? b >> 4 : b & 15;
    const int64_t k = (o / t.tile_out) * tin + i / t.tile_in;
    out.st(e, scale[k] * float(q) + zero[k]);
  }
}

}  // namespace

void asym4_dequantize(Tensor out, Tensor codes, Tensor scale, Tensor zero, const Asym4Tiles& t, int64_t row0) {
  const int64_t n = out.numel();
  if (n == 0) return;
  asym4_dequant_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "asym4_dequantize out"),
                                                               static_cast<const uint8_t*>(codes.raw()), scale.f32(),
                                                               zero.f32(), t, row0, n);
  CUDA_CHECK_LAUNCH("asym4_dequantize");
}

}  // namespace qtrain::cuda
