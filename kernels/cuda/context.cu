#include <cstdlib>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/device.h"

namespace qtrain::cuda {

// 32 MiB: what NVIDIA recommends for cuBLASLt on Hopper (QT_LT_WORKSPACE_MIB overrides it).
constexpr size_t kLtWorkspaceMib = 32;

size_t env_mib(const char* name, size_t default_mib) {
  const char* e = std::getenv(name);
  char* end = nullptr;
  const long v = e ? std::strtol(e, &end, 10) : 0;
  return size_t(e && end != e && *end == 0 && v > 0 ? v : long(default_mib)) << 20;
}

Context& Context::get() {
  static Context ctx;
  return ctx;
}

Context::Context() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, dev));
  int optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  max_smem_optin_ = size_t(optin);
  // A blocking stream: it stays ordered with legacy default-stream copies.
  CUDA_CHECK(cudaStreamCreate(&stream_));
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  workspace_bytes_ = env_mib("QT_LT_WORKSPACE_MIB", kLtWorkspaceMib);
  CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

// The context lives until process exit; by then the driver may already be
// unloading, so errors here are deliberately ignored.
Context::~Context() {
  for (void* p : scratch_)
    if (p) cudaFree(p);
  if (workspace_) cudaFree(workspace_);
  if (lt_) cublasLtDestroy(lt_);
  if (stream_) cudaStreamDestroy(stream_);
}

void* Context::scratch(Scratch slot, size_t bytes) {
  int i = int(slot);
  if (scratch_bytes_[i] >= bytes) return scratch_[i];
  if (scratch_[i]) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // earlier ops may still read it
    CUDA_CHECK(cudaFree(scratch_[i]));
    scratch_[i] = nullptr;
    scratch_bytes_[i] = 0;
  }
  size_t want = (bytes + 255) / 256 * 256;
  cuda_bump_buffer_generation();  // captured graphs holding the old pointer are stale
  CUDA_CHECK(cudaMalloc(&scratch_[i], want));
  scratch_bytes_[i] = want;
  return scratch_[i];
}

}  // namespace qtrain::cuda
