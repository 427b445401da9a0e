// Pointwise activations.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// GELU, tanh approximation (HF "gelu_new", GPT-2). Same shapes in and out.
QT_OP(void, gelu_forward, (Tensor out, Tensor x))
QT_OP(void, gelu_backward, (Tensor dx, Tensor dout, Tensor x))  // dx overwritten

// SwiGLU: out = silu(gate) * up.  gate, up, out: [N,I].
QT_OP(void, swiglu_forward, (Tensor out, Tensor gate, Tensor up))
QT_OP(void, swiglu_backward, (Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up))  // overwritten

}  // namespace qtrain
