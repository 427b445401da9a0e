// The one CUDA context qtrain's kernels share: a stream every op is queued on,
// the cuBLASLt handle and its workspace, and reusable scratch buffers so that
// ops needing temporaries (gemm dtype conversion, the chunked loss) do not
// cudaMalloc once the first step has sized them.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace qtrain::cuda {

// Scratch slots: an op may hold several at once, never two ops the same slot at
// the same time (all ops run in order on the one stream, so reuse is safe).
enum class Scratch : int { GemmA = 0, GemmB, GemmBias, Loss, LossX, LossW, LossSum, AttnDq, AttnD, AttnDk, AttnDv, AttnWork, Reduce, Rope, DecodeAttn, kCount };

class Context {
 public:
  static Context& get();  // created on first use
  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t lt() const { return lt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  int sm_count() const { return sm_count_; }
  size_t max_smem_optin() const { return max_smem_optin_; }
  // At least `bytes` of device memory in the given slot; grows (never shrinks).
  void* scratch(Scratch slot, size_t bytes);
  // With QT_MEM_PROBE set: the device's used memory and stack limit at `where`, on stderr.
  static void probe(const char* where);

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  Context();
  ~Context();
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  int sm_count_ = 0;
  size_t max_smem_optin_ = 0;
  void* scratch_[int(Scratch::kCount)] = {};
  size_t scratch_bytes_[int(Scratch::kCount)] = {};
};

inline cudaStream_t stream() { return Context::get().stream(); }

// A size from the environment, for measuring memory against speed without a
// rebuild (QT_STACK_BYTES in bytes; QT_LT_WORKSPACE_MIB, QT_LOSS_CHUNK_MIB in
// MiB, returned in bytes); the default when unset or not a positive number.
// Read by the caller once.
size_t env_size(const char* name, size_t default_value);
size_t env_mib(const char* name, size_t default_mib);
// A switch from the environment, for measuring one kernel form against another: set, it is on unless
// it reads as the integer 0; unset, the default. Read by the caller once.
bool env_flag(const char* name, bool default_value);

}  // namespace qtrain::cuda
