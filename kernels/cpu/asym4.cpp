// Asymmetric tiled 4-bit dequantization: the fp32 reference. Shapes are checked
// here, before the dispatch, so both backends refuse the same calls.
#include "kernels/asym4.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

void asym4_dequantize(Tensor out, Tensor codes, Tensor scale, Tensor zero, const Asym4Tiles& t, int64_t row0) {
  QT_CHECK(t.tile_out >= 1 && t.tile_in >= 2 && t.tile_in % 2 == 0 && t.out % t.tile_out == 0 && t.in % t.tile_in == 0,
           "asym4_dequantize: tiles do not divide the weight");
  QT_CHECK(codes.dtype() == DType::U8 && codes.numel() == t.out * t.in / 2, "asym4_dequantize: codes must be U8 [out, in/2]");
  const int64_t tiles = (t.out / t.tile_out) * (t.in / t.tile_in);
  QT_CHECK(scale.dtype() == DType::F32 && zero.dtype() == DType::F32 && scale.numel() == tiles && zero.numel() == tiles,
           "asym4_dequantize: scale and zero must be F32 [out/tile_out, in/tile_in]");
  QT_CHECK(out.ndim() == 2 && out.size(1) == t.in && row0 >= 0 && row0 + out.size(0) <= t.out,
           "asym4_dequantize: out must be [rows, in] within the weight");
  check_on(out, codes, "asym4_dequantize out");
  check_on(scale, codes, "asym4_dequantize scale");
  check_on(zero, codes, "asym4_dequantize zero");
  QT_DISPATCH_CUDA(codes, asym4_dequantize, out, codes, scale, zero, t, row0);
  cpu::check_f32(out, "asym4_dequantize out");
  const int64_t rows = out.size(0), tin = t.in / t.tile_in;
  const uint8_t* pc = static_cast<const uint8_t*>(codes.raw());
  const float *ps = scale.f32(), *pz = zero.f32();
  float* po = out.f32();
#pragma omp parallel for if (rows * t.in >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = row0 + r;
    for (int64_t i = 0; i < t.in; ++i) {
      const uint8_t b = pc[o * (t.in / 2) + i / 2];
      const int q = (i & 1) ? b >> 4 : b & 15;
      const int64_t k = (o / t.tile_out) * tin + i / t.tile_in;
      po[r * t.in + i] = ps[k] * float(q) + pz[k];
    }
  }
}

}  // namespace qtrain
