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

// The W2A8 product in two steps, so that the activation quantization can fuse
// with the SubLN before it and be shared by products reading one x (q/k/v,
// gate/up). Q8Rows holds x's rows as the product takes them: int8 codes
// rn(x * 127 / absmax) (no clamp: |code| <= 127), the row's absmax and the sum
// of its codes (the dp4a and wgmma products run on codes T + 1 and subtract it).
struct Q8Rows {
  Tensor q;       // I8 [n, cols]
  Tensor absmax;  // F32 [n]
  Tensor sum;     // I32 [n]
  static Q8Rows empty(int64_t n, int64_t cols, Device d);
  int64_t rows() const { return q.size(0); }
  int64_t cols() const { return q.size(1); }
};
constexpr float kSubLnEps = 1e-5f;  // BitNet's SubLN (models/subln.h)
// act = Q8(x), or with subln Q8(SubLN(x)): the SubLN's output rounded to x's
// dtype, then quantized - the values of rmsnorm_forward(xn, rstd, x, ones,
// kSubLnEps) followed by quantize_act_q8(act, xn, false). CUDA: one kernel.
QT_OP(void, quantize_act_q8, (const Q8Rows& act, Tensor x, bool subln))
// y[n, rows] = the W2A8 product of act's rows: ternary_matmul(y, x, w) equals
// quantize_act_q8(act, x, false) followed by this, value for value.
QT_OP(void, ternary_matmul_q8, (Tensor y, const Q8Rows& act, const TernaryTensor& w))
// Past kTernaryGemvMaxRows, a weight of these shapes takes the fused product on
// CUDA (kernels/cuda/ternary_gemm.cu, sm_90a: a TMA producer for x's int8 rows
// and the codes decoded into shared memory, wgmma consumers, no int32 matrix
// through memory) and others the int8 levels + cuBLASLt int8 GEMM + epilogue;
// both give the same values. The kernel takes any K % 64 == 0, but from K = 4096
// (LLaMA-7B) cuBLASLt's int8 GEMM is faster even with its int32 round trip
// (0.61-0.89x the fused kernel's time at any of its tile widths, H100,
// 2026-12-07, before the kernel's epilogue was reworked; not re-measured since), hence the cap:
// SmolLM2's 576 and 1536. QT_W2A8_FUSED=0 turns it off.
constexpr int64_t kTernaryGemmMaxCols = 1536;
inline bool ternary_gemm_fused_shape(int64_t rows, int64_t cols) {
  return cols > 0 && cols % 64 == 0 && cols <= kTernaryGemmMaxCols && rows % 8 == 0;
}

}  // namespace qtrain
