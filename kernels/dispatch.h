// How a public op reaches its CUDA twin. Each kernels/cpu/X.cpp defines the
// public op (declared with its twin by QT_OP, kernels/op.h): it checks what
// both backends require, forwards to qtrain::cuda::X when the tensor lives on
// the GPU, and otherwise runs the plain fp32 reference loops that follow.
#pragma once
#include "kernels/tensor.h"

#ifdef QTRAIN_HAS_CUDA
#define QT_DISPATCH_CUDA(probe, fn, ...) \
  do {                                   \
    if ((probe).is_cuda()) return ::qtrain::cuda::fn(__VA_ARGS__); \
  } while (0)
#else
#define QT_DISPATCH_CUDA(probe, fn, ...) \
  do {                                   \
    QT_CHECK(!(probe).is_cuda(), "CUDA tensor in a build without CUDA"); \
  } while (0)
#endif
