#include "kernels/gguf_dequant.h"

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
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

bool gemv_gguf_supported(const Tensor& x, GgmlType type) {
  return x.is_cuda() && x.dtype() == DType::BF16 && x.ndim() >= 1 && x.size(-1) > 0 &&
         x.numel() / x.size(-1) <= kGemvGgufMaxRows &&
         (type == GgmlType::Q4_0 || type == GgmlType::Q4_1 || type == GgmlType::Q8_0);
}

void matmul_gguf(Tensor y, Tensor x, Tensor blocks, GgmlType type) {
  QT_CHECK(x.ndim() >= 1 && x.size(-1) > 0, "matmul_gguf: x must have columns");
  const int64_t cols = x.size(-1), m = x.numel() / cols;
  const size_t row_bytes = ggml_row_size(type, cols);
  QT_CHECK(blocks.dtype() == DType::U8 && blocks.nbytes() % row_bytes == 0,
           "matmul_gguf: blocks hold " + std::to_string(blocks.nbytes()) + " bytes, not whole rows of " +
               std::to_string(cols) + " " + ggml_type_name(type) + " weights");
  const int64_t rows = int64_t(blocks.nbytes() / row_bytes);
  check_on(blocks, x, "matmul_gguf blocks");
  check_on(y, x, "matmul_gguf y");
  QT_CHECK(y.numel() == m * rows, "matmul_gguf: y " + shape_str(y.shape()) + " for x " + shape_str(x.shape()) +
                                      " and W [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  QT_DISPATCH_CUDA(x, matmul_gguf, y, x, blocks, type);
  cpu::check_f32(x, "matmul_gguf x");
  cpu::check_f32(y, "matmul_gguf y");
  Tensor w = Tensor::empty({rows, cols}, DType::F32);
  dequantize_gguf(w, blocks, type);
  gemm(y.view({m, rows}), x.view({m, cols}), w, false, true);
}

}  // namespace qtrain
