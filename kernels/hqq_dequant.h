// HQQ-packed weights (kernels/quant/hqq.h) dequantized into a dense matrix,
// for a frozen HQQ base: the GPU product dequantizes it into a BF16 scratch
// and runs the dense gemm, as the 4-bit bases do (models/hqq_weight.h).
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out [rows, cols] = (q - zero) * scale per group of 64 along a row, in F32
// (the GPU computes the same F32 value with the same two rounded operations,
// then stores it as out's dtype). codes: U8 [rows * cols * bits / 8] (rows
// back to back, groups of 64 in flat order); scale, zero: F32 [rows * cols / 64];
// all on out's device.
// CPU: out F32. CUDA: out BF16 or F32. bits: 4 or 2.
QT_OP(void, dequantize_hqq, (Tensor out, Tensor codes, Tensor scale, Tensor zero, int bits))

}  // namespace qtrain
