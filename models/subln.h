// BitNet's SubLN: an RMSNorm without weights (eps 1e-5) on a BitLinear's
// input, blended in as (1 - lambda) x + lambda SubLN(x) during the lambda
// warmup (models/bitlinear_weight.h) and whole in a trained ternary base
// (models/ternary_weight.h).
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

class SubLn {
 public:
  // x blended with its normalisation; rstd (optional) receives the per-row 1/rms.
  Tensor forward(Tensor x, float lambda, Tensor* rstd = nullptr) const;
  // dx = (or +=, beta 1) the gradient through forward, given dxn at its output.
  void backward(Tensor dx, Tensor dxn, Tensor x, float lambda, float beta) const;

 private:
  Tensor ones(int64_t n, Device d) const;
  mutable Tensor ones_;
};

}  // namespace qtrain
