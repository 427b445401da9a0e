// GGUF (ggml) blocks dequantized into a dense matrix, for a frozen base kept
// in its GGUF format: the GPU product dequantizes it into a BF16 scratch and
// runs the dense gemm, as the 4-bit bases do (models/gguf_block_weight.h).
#pragma once
#include "kernels/quant/gguf_blocks.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out [rows, cols] = blocks dequantized as ggml's dequantize_row_* does.
// blocks: U8 [rows * ggml_row_size(type, cols)], rows back to back, on out's
// device. CPU: every dequantizable type, out F32. CUDA: Q4_0, Q4_1, Q8_0 and
// F16 (the same F32 values, bit for bit), out BF16 or F32; any other type is an
// Error naming it.
QT_OP(void, dequantize_gguf, (Tensor out, Tensor blocks, GgmlType type))
// Whether the GPU kernel takes this type.
bool gguf_type_on_gpu(GgmlType type);

// y[M, rows] = x[M, cols] @ W^T for a few rows of x (decode), W the [rows, cols]
// blocks as dequantize_gguf reads them. CUDA: one pass over the blocks, no dense
// copy of W (gemv_gguf_supported says when); the CPU reference dequantizes and
// multiplies. The GPU sums each block's products before its scale (d * sum(q x)),
// so it matches the reference within float rounding, not bit for bit.
QT_OP(void, matmul_gguf, (Tensor y, Tensor x, Tensor blocks, GgmlType type))
constexpr int64_t kGemvGgufMaxRows = 8;
// x on the GPU in BF16, at most kGemvGgufMaxRows rows, a type the kernel reads (Q4_0, Q4_1, Q8_0).
bool gemv_gguf_supported(const Tensor& x, GgmlType type);

}  // namespace qtrain
