// Per-column scaling of row-major [N, W] activations, and its reductions: what
// the scaling adapters need (IA3's learned vectors, DoRA's magnitude / norm).
// The vectors are F32 (trainable master copies); activations any float dtype.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out[n, j] = x[n, j] * (v[j] + offset); out may be x. keep, when defined,
// receives x unchanged in the same pass (DoRA keeps its unscaled output).
QT_OP(void, mul_cols, (Tensor out, Tensor x, Tensor v, float offset = 0.f, Tensor keep = Tensor()))
// g[j] += sum_n a[n, j] * b[n, j]  (divided by div[j] when div is defined).
// g, div: F32 [W]. The gradient of a column scale.
QT_OP(void, col_dot, (Tensor g, Tensor a, Tensor b, Tensor div = Tensor()))

// DoRA's per-output-feature norm of W + s*B*A without forming it (B [out, r], A [r, in]):
//   ||W_i + s (BA)_i||^2 = ||W_i||^2 + 2 s sum_k B_ik P_ki + s^2 sum_k B_ik Q_ki
// with P = A W^T [r, out] (one base product of r rows, so a quantized base
// is never dequantized) and Q = (A A^T) B^T [r, out]. Writes norm[i] and
// scale[i] = m[i] / norm[i]. wn2 (||W_i||^2), m, B, Q, norm, scale: F32.
QT_OP(void, dora_scale, (Tensor scale, Tensor norm, Tensor m, Tensor wn2, Tensor B, Tensor P, Tensor Q, float s))

}  // namespace qtrain
