// Causal scaled-dot-product attention with grouped-query heads.
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

// q: [B,T,Hq,D]; k, v: [B,T,Hkv,D] with Hq % Hkv == 0 (query head h reads kv head
// h / (Hq/Hkv)); out: [B,T,Hq,D]; lse: F32 [B,Hq,T], the softmax log-sum-exp,
// saved so backward need not keep the T x T matrix. Scale 1/sqrt(D).
void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v);
// dq, dk, dv overwritten (shapes of q, k, v).
void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                        Tensor out, Tensor lse);

}  // namespace qtrain
