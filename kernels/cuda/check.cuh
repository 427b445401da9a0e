// Checked CUDA and cuBLASLt calls: a failure becomes a qtrain::Error(Runtime)
// naming the call, the file:line and the CUDA error string.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/error.h"

namespace qtrain::cuda {

[[noreturn]] inline void throw_cuda(const char* call, cudaError_t e, const char* file, int line) {
  throw Error(std::string("CUDA error in ") + call + " (" + file + ":" + std::to_string(line) +
                  "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e),
              e == cudaErrorMemoryAllocation ? ErrorKind::OutOfMemory : ErrorKind::Runtime);
}

[[noreturn]] inline void throw_cublas(const char* call, cublasStatus_t s, const char* file, int line) {
  throw Error(std::string("cuBLASLt error in ") + call + " (" + file + ":" + std::to_string(line) +
                  "): status " + std::to_string(int(s)),
              s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorKind::OutOfMemory : ErrorKind::Runtime);
}

}  // namespace qtrain::cuda

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t qt_err_ = (call);                                                         \
    if (qt_err_ != cudaSuccess) ::qtrain::cuda::throw_cuda(#call, qt_err_, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                   \
  do {                                                                                       \
    cublasStatus_t qt_st_ = (call);                                                          \
    if (qt_st_ != CUBLAS_STATUS_SUCCESS) ::qtrain::cuda::throw_cublas(#call, qt_st_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, named.
#define CUDA_CHECK_LAUNCH(name) CUDA_CHECK(cudaGetLastError())
