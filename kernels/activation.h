// Pointwise activations.
#pragma once
#include "kernels/tensor.h"

namespace qtrain {

// GELU, tanh approximation (HF "gelu_new", GPT-2). Same shapes in and out.
void gelu_forward(Tensor out, Tensor x);
void gelu_backward(Tensor dx, Tensor dout, Tensor x);  // dx overwritten

// SwiGLU: out = silu(gate) * up.  gate, up, out: [N,I].
void swiglu_forward(Tensor out, Tensor gate, Tensor up);
void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up);  // overwritten

}  // namespace qtrain
