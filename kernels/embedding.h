// Token (+ learned position) embedding lookup.
#pragma once
#include "kernels/seq_pos.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out[N,C] = wte[ids[n]] + (wpe defined ? wpe[pos0 + n % T] : 0)
//   ids: I32 [N] (N = B*T), wte: [V,C], wpe: [maxT,C] or undefined;
//   pos0 > 0 when decoding after pos0 cached tokens.
// An id outside [0,V) is an internal error: the data layer validates ids first.
QT_OP(void, embedding_forward, (Tensor out, Tensor ids, Tensor wte, Tensor wpe, int T, SeqPos pos = {}))
// dwte[ids[n]] += dout[n]; dwpe[n % T] += dout[n]. Either may be undefined (frozen).
QT_OP(void, embedding_backward, (Tensor dwte, Tensor dwpe, Tensor dout, Tensor ids, int T))

}  // namespace qtrain
