// cuDNN's fused flash attention (SDPA) for kernels/attention.h on the GPU.
// The cuDNN path is compiled when CMake finds the cudnn-frontend headers
// (QTRAIN_HAS_CUDNN); libcudnn.so.9 is dlopen'ed at the first call, so a
// machine without cuDNN still runs qtrain, on its own attention kernels.
#pragma once
#include <string>

#include "kernels/tensor.h"

namespace qtrain::cuda {

// Each returns true when cuDNN ran the op, false when the caller's own kernels
// must run: attention_impl() is Own, or Auto and cuDNN is missing or refuses
// the shape (logged once). With Cudnn and no usable cuDNN it throws an Error
// saying why. Records the choice with note_attention_impl. Same shapes and semantics as
// kernels/attention.h: lse is cuDNN's softmax "Stats" (natural-log LSE of the
// scaled scores), so a forward from one implementation feeds a backward of the other.
bool cudnn_attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v);
bool cudnn_attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                              Tensor lse);

}  // namespace qtrain::cuda
