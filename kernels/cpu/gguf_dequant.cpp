#include "kernels/gguf_dequant.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

bool gguf_type_on_gpu(GgmlType t) { return ggml_type_info(t).on_gpu; }

void dequantize_gguf(Tensor out, Tensor blocks, GgmlType type) {
  QT_CHECK(out.ndim() == 2, "dequantize_gguf: out must be [rows, cols]");
  const int64_t rows = out.size(0), cols = out.size(1);
  const size_t row_bytes = ggml_row_size(type, cols);
  QT_CHECK(blocks.dtype() == DType::U8 && blocks.nbytes() == size_t(rows) * row_bytes,
           "dequantize_gguf: blocks hold " + std::to_string(blocks.nbytes()) + " bytes, not rows * row size");
  check_on(blocks, out, "dequantize_gguf blocks");
  QT_DISPATCH_CUDA(out, dequantize_gguf, out, blocks, type);
  cpu::check_f32(out, "dequantize_gguf out");
  const uint8_t* src = static_cast<const uint8_t*>(blocks.raw());
  float* dst = out.f32();
#pragma omp parallel for if (rows * cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) dequantize_row(type, src + size_t(r) * row_bytes, dst + r * cols, cols);
}

}  // namespace qtrain
