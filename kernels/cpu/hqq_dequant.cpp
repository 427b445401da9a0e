#include "kernels/hqq_dequant.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"
#include "kernels/quant/hqq.h"

namespace qtrain {

void dequantize_hqq(Tensor out, Tensor codes, Tensor scale, Tensor zero, int bits) {
  QT_CHECK(out.ndim() == 2, "dequantize_hqq: out must be [rows, cols]");
  QT_CHECK(bits == 4 || bits == 2, "dequantize_hqq: bits must be 4 or 2");
  const int64_t rows = out.size(0), cols = out.size(1);
  QT_CHECK((rows * cols) % quant::kHqqGroup == 0 && cols % (8 / bits) == 0,
           "dequantize_hqq: [rows, cols] is not whole 64-weight groups");
  const int64_t ng = rows * cols / quant::kHqqGroup;
  QT_CHECK(codes.dtype() == DType::U8 && codes.nbytes() == size_t(rows * cols * bits / 8),
           "dequantize_hqq: codes hold " + std::to_string(codes.nbytes()) + " bytes, not rows * cols * bits / 8");
  QT_CHECK(scale.dtype() == DType::F32 && zero.dtype() == DType::F32 && scale.numel() == ng && zero.numel() == ng,
           "dequantize_hqq: scale and zero must be F32 [rows * cols / 64]");
  check_on(codes, out, "dequantize_hqq codes");
  check_on(scale, out, "dequantize_hqq scale");
  check_on(zero, out, "dequantize_hqq zero");
  QT_DISPATCH_CUDA(out, dequantize_hqq, out, codes, scale, zero, bits);
  cpu::check_f32(out, "dequantize_hqq out");
  const auto* src = static_cast<const uint8_t*>(codes.raw());
  const float *s = scale.f32(), *z = zero.f32();
  float* dst = out.f32();
#pragma omp parallel for if (rows * cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r)
    quant::dequantize_hqq_flat(src, s, z, bits, r * cols, cols, dst + r * cols);
}

}  // namespace qtrain
