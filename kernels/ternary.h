// BitNet b1.58 quantizers (Ma et al. 2024) with the blend of quantization-aware
// warmup: out = (1 - lambda) * v + lambda * quant(v) (exact at lambda 0 and 1). Backward is straight-through
// (the gradient passes unchanged), so there is no backward op.
//   weights:     gamma = mean|w| (per tensor), quant(w) = clamp(round(w / gamma), -1, 1) * gamma
//   activations: per row s = 127 / max|x_row|, quant(x) = clamp(round(x * s), -128, 127) / s
// with the reference's guards (gamma and max|x| clamped below at 1e-5) and
// round half to even, as torch.round. Any float dtype in and out.
//
// The stored form (a frozen BitNet base, decode, export) is 2-bit packed
// (kernels/quant/ternary.h). Its product is W2A8: x quantized per row to int8
// as the activations above (at lambda 1), exact int32 dot products with the
// ternary codes, then y = acc * (absmax_x / 127) * (127 scale / 127) - the
// LLM.int8 epilogue (kernels/quant/int8.h) with the weight's row absmax set to
// 127 * scale, so that every path gives the same F32 value bit for bit.
#pragma once
#include "kernels/quant/ternary.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

QT_OP(void, ternary_fake_quant, (Tensor out, Tensor w, float lambda))
QT_OP(void, int8_act_fake_quant, (Tensor out, Tensor x, float lambda))

struct TernaryTensor {
  int64_t rows = 0, cols = 0;
  float scale = 0.f;
  Tensor codes;  // U8 [rows, row_bytes]: kernels/quant/ternary.h's layout
  Tensor wabs;   // F32 [rows], every entry 127 * scale: the int8 product's weight absmax
  static TernaryTensor from_packed(const quant::PackedTernary& p);  // host copy
  TernaryTensor to(Device d) const;
  size_t bytes() const;
};

// out [rows, cols]: I8 = the levels T (-1, 0, 1); F32 / BF16 = scale * T.
QT_OP(void, unpack_ternary, (Tensor out, const TernaryTensor& w))
// y[N, rows] = Q8(x[N, cols]) @ (scale T)^T, the W2A8 product above. CUDA: up
// to kTernaryGemvMaxRows rows of x (decode) in one pass over the 2-bit weight
// with dp4a; more rows as below.
QT_OP(void, ternary_matmul, (Tensor y, Tensor x, const TernaryTensor& w))
constexpr int64_t kTernaryGemvMaxRows = 8;
// Past kTernaryGemvMaxRows, a weight of these shapes takes the fused product on
// CUDA (kernels/cuda/ternary_gemm.cu, sm_90a: x quantized, then wgmma on codes
// decoded in shared memory, no int32 matrix through memory; x's int8 rows sit
// whole in shared memory, hence the cap: SmolLM2's 576 and 1536) and others the
// int8 levels + cuBLASLt int8 GEMM + epilogue, which is as fast from K = 4096
// (LLaMA-7B); both give the same values. QT_W2A8_FUSED=0 turns it off.
constexpr int64_t kTernaryGemmMaxCols = 1536;
inline bool ternary_gemm_fused_shape(int64_t rows, int64_t cols) {
  return cols > 0 && cols % 64 == 0 && cols <= kTernaryGemmMaxCols && rows % 8 == 0;
}

}  // namespace qtrain
