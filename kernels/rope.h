// Rotary position embedding, HF "rotate_half" convention: dimension i pairs
// with i + D/2 (not interleaved), inv_freq[i] = theta^(-2i/D), position = pos0 + t
// (pos0 > 0 when decoding after cached tokens).
#pragma once
#include "kernels/seq_pos.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// x: [B,T,H,D], rotated in place.
QT_OP(void, rope_forward, (Tensor x, float theta, SeqPos pos = {}))
// dx: [B,T,H,D], rotated back in place (the transpose of the forward rotation).
QT_OP(void, rope_backward, (Tensor dx, float theta, int pos0 = 0))

}  // namespace qtrain
