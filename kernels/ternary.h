// BitNet b1.58 quantizers (Ma et al. 2024) with the blend of quantization-aware
// warmup: out = (1 - lambda) * v + lambda * quant(v) (exact at lambda 0 and 1). Backward is straight-through
// (the gradient passes unchanged), so there is no backward op.
//   weights:     gamma = mean|w| (per tensor), quant(w) = clamp(round(w / gamma), -1, 1) * gamma
//   activations: per row s = 127 / max|x_row|, quant(x) = clamp(round(x * s), -128, 127) / s
// with the reference's guards (gamma and max|x| clamped below at 1e-5) and
// round half to even, as torch.round. Any float dtype in and out.
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

void ternary_fake_quant(Tensor out, Tensor w, float lambda);
void int8_act_fake_quant(Tensor out, Tensor x, float lambda);

}  // namespace qtrain
