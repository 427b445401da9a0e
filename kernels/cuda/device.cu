// kernels/device.h on a CUDA build. Copies and memsets are queued on the
// context's stream so they stay ordered with every op.
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/device.h"

namespace qtrain {

bool built_with_cuda() { return true; }

// No driver, no device, or a broken install all mean "no GPU", never a crash.
bool cuda_available() {
  static const bool available = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
      return false;
    }
    return n > 0;
  }();
  return available;
}

std::string cuda_device_name() {
  if (!cuda_available()) return "";
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return "";
  return prop.name;
}

void* cuda_alloc(size_t bytes) {
  if (!cuda_available()) throw Error("cuda_alloc: no CUDA device is available", ErrorKind::Runtime);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("cudaMalloc of " + std::to_string(bytes) + " bytes failed (" + cudaGetErrorString(e) +
                    "); free " + std::to_string(free_b >> 20) + " MiB of " + std::to_string(total_b >> 20) +
                    " MiB",
                ErrorKind::Runtime);
  }
  return p;
}

// Called from Tensor destructors, possibly at process exit: never throws.
void cuda_free(void* p) {
  if (p) cudaFree(p);
}

void cuda_copy(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return;
  cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
  QT_CHECK(kind >= 0 && kind <= 2, "cuda_copy: bad kind " + std::to_string(kind));
  cudaStream_t s = cuda::stream();
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
}

void cuda_memset0(void* p, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda::stream()));
}

void cuda_sync() {
  if (!cuda_available()) return;
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

}  // namespace qtrain
