// Rotary position embedding, HF "rotate_half" convention: dimension i pairs
// with i + D/2 (not interleaved), inv_freq[i] = theta^(-2i/D), position = t % T.
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

// x: [B,T,H,D], rotated in place.
void rope_forward(Tensor x, float theta);
// dx: [B,T,H,D], rotated back in place (the transpose of the forward rotation).
void rope_backward(Tensor dx, float theta);

}  // namespace qtrain
