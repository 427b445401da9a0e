#include "kernels/lowra_dequant.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"
#include "kernels/quant/lowra.h"

namespace qtrain {

namespace {

// The checks both products and both backends share, before the dispatch: the
// packed layout of a [rows, cols] weight, all of it on ref's device.
void check_layout(int64_t rows, int64_t cols, const Tensor& codes, const Tensor& row_offset, const Tensor& bits,
                  const Tensor& lut, const Tensor& absmax, const Tensor& ref, const char* what) {
  const std::string w = what;
  check_on(codes, ref, (w + " codes").c_str());
  check_on(row_offset, ref, (w + " row_offset").c_str());
  check_on(bits, ref, (w + " bits").c_str());
  check_on(lut, ref, (w + " lut").c_str());
  check_on(absmax, ref, (w + " absmax").c_str());
  QT_CHECK(cols % quant::kLowraGroup == 0, w + ": cols is not a multiple of 64");
  QT_CHECK(codes.dtype() == DType::U8 && row_offset.dtype() == DType::I32 && row_offset.numel() == rows &&
               bits.dtype() == DType::U8 && bits.numel() == rows,
           w + ": codes U8, row_offset I32 [rows], bits U8 [rows]");
  QT_CHECK(lut.dtype() == DType::F32 && lut.numel() == rows * quant::kLowraLut && absmax.dtype() == DType::F32 &&
               absmax.numel() == rows * cols / quant::kLowraGroup,
           w + ": lut F32 [rows * 16], absmax F32 [rows * cols / 64]");
}

// CPU only: every row's width and offset inside the codes (the GPU trusts the upload of a checked pack).
void check_rows(int64_t rows, int64_t cols, const Tensor& codes, const Tensor& row_offset, const Tensor& bits) {
  const auto* off = static_cast<const int32_t*>(row_offset.raw());
  const auto* b = static_cast<const uint8_t*>(bits.raw());
  const int64_t nbytes = int64_t(codes.nbytes());
  for (int64_t r = 0; r < rows; ++r)
    QT_CHECK((b[r] == 1 || b[r] == 2 || b[r] == 4) && off[r] >= 0 && off[r] + cols * b[r] / 8 <= nbytes,
             "lowra: row " + std::to_string(r) + " has a bad width or offset");
}

void dequantize_row(const Tensor& codes, const Tensor& row_offset, const Tensor& bits, const Tensor& lut,
                    const Tensor& absmax, int64_t r, int64_t cols, float* out) {
  const auto* off = static_cast<const int32_t*>(row_offset.raw());
  quant::dequantize_lowra_row(static_cast<const uint8_t*>(codes.raw()) + off[r], static_cast<const uint8_t*>(bits.raw())[r],
                              lut.f32() + r * quant::kLowraLut, absmax.f32() + r * (cols / quant::kLowraGroup), cols, out);
}

}  // namespace

void dequantize_lowra(Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  QT_CHECK(out.ndim() == 2, "dequantize_lowra: out must be [rows, cols]");
  const int64_t rows = out.size(0), cols = out.size(1);
  check_layout(rows, cols, codes, row_offset, bits, lut, absmax, out, "dequantize_lowra");
  QT_DISPATCH_CUDA(out, dequantize_lowra, out, codes, row_offset, bits, lut, absmax);
  cpu::check_f32(out, "dequantize_lowra out");
  check_rows(rows, cols, codes, row_offset, bits);
  float* dst = out.f32();
#pragma omp parallel for if (rows * cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) dequantize_row(codes, row_offset, bits, lut, absmax, r, cols, dst + r * cols);
}

void lowra_matvec(Tensor y, Tensor x, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  const int64_t rows = bits.numel(), cols = x.size(-1), m = x.numel() / std::max<int64_t>(cols, 1);
  QT_CHECK(m >= 1 && m <= kLowraMatvecRows, "lowra_matvec: x must hold 1 to 8 rows");
  QT_CHECK(y.numel() == m * rows, "lowra_matvec: y must be [M, rows]");
  check_on(y, x, "lowra_matvec y");
  check_layout(rows, cols, codes, row_offset, bits, lut, absmax, x, "lowra_matvec");
  QT_DISPATCH_CUDA(y, lowra_matvec, y, x, codes, row_offset, bits, lut, absmax);
  cpu::check_f32(y, "lowra_matvec y");
  cpu::check_f32(x, "lowra_matvec x");
  check_rows(rows, cols, codes, row_offset, bits);
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel if (rows * cols >= cpu::kParallelMinWork)
  {
    std::vector<float> w(static_cast<size_t>(cols));
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(codes, row_offset, bits, lut, absmax, r, cols, w.data());
      for (int64_t i = 0; i < m; ++i) {
        float s = 0.f;
        for (int64_t c = 0; c < cols; ++c) s += xp[i * cols + c] * w[size_t(c)];
        yp[i * rows + r] = s;
      }
    }
  }
}

}  // namespace qtrain
