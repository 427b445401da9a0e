// How an op is declared: once, in its own header (kernels/X.h), with
//   QT_OP(void, rope_forward, (Tensor x, float theta, SeqPos pos = {}))
// That declares the public op qtrain::rope_forward and, in CUDA builds, its
// twin qtrain::cuda::rope_forward (kernels/cuda/X.cu) from the same parameter
// list, so the two signatures cannot drift apart. The public op, defined in
// kernels/cpu/X.cpp, checks what both backends require (shapes, positions,
// arguments), then forwards a GPU tensor to the twin (QT_DISPATCH_CUDA,
// kernels/dispatch.h) or runs the fp32 reference. The twin checks only what
// is its own (the dtypes it supports, alignment of vectorised paths).
#pragma once

#ifdef QTRAIN_HAS_CUDA
#define QT_OP(ret, name, params)                                               \
  ret name params;                                                             \
  namespace cuda {                                                             \
  ret name params;                                                             \
  }
#else
#define QT_OP(ret, name, params) ret name params;
#endif
