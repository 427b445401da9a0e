#include "kernels/lowra_dequant.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/quant/lowra.h"

namespace qtrain {

void dequantize_lowra(Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  QT_CHECK(out.ndim() == 2, "dequantize_lowra: out must be [rows, cols]");
  const int64_t rows = out.size(0), cols = out.size(1);
  QT_CHECK(cols % quant::kLowraGroup == 0, "dequantize_lowra: cols is not a multiple of 64");
  QT_CHECK(codes.dtype() == DType::U8 && row_offset.dtype() == DType::I32 && row_offset.numel() == rows &&
               bits.dtype() == DType::U8 && bits.numel() == rows,
           "dequantize_lowra: codes U8, row_offset I32 [rows], bits U8 [rows]");
  QT_CHECK(lut.dtype() == DType::F32 && lut.numel() == rows * quant::kLowraLut && absmax.dtype() == DType::F32 &&
               absmax.numel() == rows * cols / quant::kLowraGroup,
           "dequantize_lowra: lut F32 [rows * 16], absmax F32 [rows * cols / 64]");
  QT_DISPATCH_CUDA(out, dequantize_lowra, out, codes, row_offset, bits, lut, absmax);
  cpu::check_f32(out, "dequantize_lowra out");
  const auto* src = static_cast<const uint8_t*>(codes.raw());
  const auto* off = static_cast<const int32_t*>(row_offset.raw());
  const auto* b = static_cast<const uint8_t*>(bits.raw());
  const int64_t nbytes = int64_t(codes.nbytes());
  for (int64_t r = 0; r < rows; ++r)
    QT_CHECK((b[r] == 1 || b[r] == 2 || b[r] == 4) && off[r] >= 0 && off[r] + cols * b[r] / 8 <= nbytes,
             "dequantize_lowra: row " + std::to_string(r) + " has a bad width or offset");
  const float *l = lut.f32(), *a = absmax.f32();
  float* dst = out.f32();
#pragma omp parallel for if (rows * cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r)
    quant::dequantize_lowra_row(src + off[r], b[r], l + r * quant::kLowraLut, a + r * (cols / quant::kLowraGroup),
                                cols, dst + r * cols);
}

}  // namespace qtrain
