#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/device.h"

namespace qtrain::cuda {

// 32 MiB: what NVIDIA recommends for cuBLASLt on Hopper (QT_LT_WORKSPACE_MIB overrides it).
constexpr size_t kLtWorkspaceMib = 32;

// The per-thread stack the driver reserves local memory for, for every resident thread of the GPU:
// its 1 KiB default is ~270 MiB on an H100/H200, ~200 MiB more than 256 B (QT_MEM_PROBE=1, 7B QLoRA
// batch 1: 6.17 -> 5.98 GiB as nvidia-smi sees it, same tok/s, H100 2026-12-05). A kernel that needs
// more still gets it: the driver grows the limit at its launch. QT_STACK_BYTES overrides it.
constexpr size_t kStackBytes = 256;

size_t env_size(const char* name, size_t default_value) {
  const char* e = std::getenv(name);
  char* end = nullptr;
  const long long v = e ? std::strtoll(e, &end, 10) : 0;
  return e && end != e && *end == 0 && v > 0 ? size_t(v) : default_value;
}

size_t env_mib(const char* name, size_t default_mib) { return env_size(name, default_mib) << 20; }

bool env_flag(const char* name, bool default_value) {
  const char* e = std::getenv(name);
  return e ? std::atoi(e) != 0 : default_value;
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
  CUDA_CHECK(cudaDeviceSetLimit(cudaLimitStackSize, env_size("QT_STACK_BYTES", kStackBytes)));
  probe("context");
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  workspace_bytes_ = env_mib("QT_LT_WORKSPACE_MIB", kLtWorkspaceMib);
  CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  probe("cublasLt + workspace");
}

// QT_MEM_PROBE=1: the device's used memory (the driver's figure) and the stack limit at the
// context's milestones, on stderr: what sits outside qtrain's allocator, measured.
void Context::probe(const char* where) {
  static const bool on = std::getenv("QT_MEM_PROBE") != nullptr;
  if (!on) return;
  size_t free_b = 0, total_b = 0, stack = 0;
  cudaMemGetInfo(&free_b, &total_b);
  cudaDeviceGetLimit(&stack, cudaLimitStackSize);
  std::fprintf(stderr, "qtrain mem probe: %s: device used %.1f MiB, stack limit %zu B\n", where,
               double(total_b - free_b) / 1048576.0, stack);
}

// The context lives until process exit; by then the driver may already be
// unloading, so errors here are deliberately ignored.
Context::~Context() {
  probe("exit");
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
