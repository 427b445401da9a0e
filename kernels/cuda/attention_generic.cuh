// Fallback causal GQA attention for head dims the tensor-core kernels in
// attention.cu do not cover (anything up to kGenericMaxHeadDim): tiny test
// models (head_dim 8, 16) and odd shapes. Simple and exact, not fast.
#pragma once
#include "kernels/cuda/common.cuh"

namespace qtrain::cuda {

constexpr int kGenericMaxHeadDim = 256;

struct AttnDims {
  int B, T, Hq, Hkv, D;
};

void attention_forward_generic(const AttnDims& d, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v);
// Di[b, h, t] = rowsum(dout * out), computed by the caller.
void attention_backward_generic(const AttnDims& d, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k,
                                Tensor v, const float* lse, const float* Di);

}  // namespace qtrain::cuda
