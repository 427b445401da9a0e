// Device memory and availability. With QTRAIN_HAS_CUDA unset these report
// "no GPU" and refuse CUDA allocations with a clear error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qtrain {

bool cuda_available();          // a usable GPU is present and the build has CUDA
bool built_with_cuda();
std::string cuda_device_name();  // "" when none

void* cuda_alloc(size_t bytes);
void cuda_free(void* p);
// Kinds: 0 host->device, 1 device->host, 2 device->device. Synchronous.
void cuda_copy(void* dst, const void* src, size_t bytes, int kind);
void cuda_memset0(void* p, size_t bytes);
void cuda_sync();

// The bytes the caching allocator hands out for a request: under 1 MiB a
// multiple of 512, else of 2 MiB, so similar shapes share cached blocks. The
// memory estimate (trainer/memory_plan.h) rounds each tensor the same way.
inline size_t cuda_block_bytes(size_t bytes) {
  const size_t small = 512, large = size_t(2) << 20;
  return bytes < (size_t(1) << 20) ? (bytes + small - 1) / small * small : (bytes + large - 1) / large * large;
}

// The caching allocator's bytes: handed out now, the most ever handed out at
// once (peak memory of qtrain's tensors), and held from the driver.
struct CudaMemoryStats {
  size_t in_use = 0, peak = 0, reserved = 0;
};
CudaMemoryStats cuda_memory_stats();
// Gives the driver back the blocks the allocator caches but does not use, and
// returns their bytes. Setup work leaves blocks of sizes a training step never
// asks for (LoftQ's F32/F64 residuals and Gram matrices: over 1 GiB at
// LLaMA-7B); cached, nvidia-smi counts them for the whole run.
size_t cuda_release_cached();
// The device's memory as the driver reports it, plus the blocks qtrain's
// allocator holds but does not use; zeros without a GPU. device_used is
// total less the driver's own free figure: what nvidia-smi shows for a GPU
// qtrain has alone (CUDA context, library handles and workspaces included).
struct CudaMemoryInfo {
  size_t free = 0, total = 0, device_used = 0;
};
CudaMemoryInfo cuda_memory_info();

// Replays of a recorded stream of ops (a CUDA graph): a decode step is
// hundreds of small launches, and issuing them one by one leaves the GPU
// waiting on the host. Capturing runs nothing; the ops queued between
// begin_capture and end_capture are recorded with their pointers and
// arguments, and every replay runs them again. So the memory they touch must
// stay theirs: blocks allocated or freed while capturing go to the graph's
// own pool, which nothing else draws from until the graph is destroyed, and a
// context scratch buffer that moves (cuda_buffer_generation) makes it stale.
class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void begin_capture();
  // Instantiates what was captured. False, with the reason in *why, when an op
  // could not be captured (the graph stays empty and the stream usable).
  bool end_capture(std::string* why);
  void replay();
  // Captured, and no buffer its ops use has moved since.
  bool current() const;

 private:
  void release();
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  int pool_ = 0;           // the allocator pool holding its blocks
  uint64_t generation_ = 0;
};

// Device bytes parked in pinned host memory between the forward that made
// them and the backward that reads them: offloaded gradient checkpoints
// (Model, ModelOptions::offload_checkpoints). The copies run on a stream of
// their own, each ordered after what the compute stream had queued when it was
// asked for, so they overlap the layers that follow; the compute stream waits
// for a copy only where its result, or its source's block, is next needed.
class HostParking {
 public:
  HostParking();
  ~HostParking();
  HostParking(const HostParking&) = delete;
  HostParking& operator=(const HostParking&) = delete;
  // Queues a copy of `bytes` device bytes at src into host slot `slot` (grown as needed).
  void park(int slot, const void* src, size_t bytes);
  // The compute stream waits for slot's last park: after it the source's block may be freed and reused.
  void wait_parked(int slot);
  // Queues a copy of slot's bytes back to dst, a device block whose last user is already queued.
  void fetch(int slot, void* dst);
  // The compute stream waits for slot's last fetch.
  void wait_fetched(int slot);
  size_t host_bytes() const;  // pinned host memory held

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Bumped whenever a buffer that ops reach outside the allocator (context
// scratch, the RoPE table) is reallocated or rewritten for another shape.
uint64_t cuda_buffer_generation();
void cuda_bump_buffer_generation();

// Whether the decode products (the 4-bit and ternary GEMVs) and the one-wave
// launches of a decode step (norms, RoPE, cached attention, pointwise ops) are
// launched with programmatic dependent launch (kernels/cuda/pdl.cuh), so that
// their launch and weight prefetch overlap the kernel before them. On by
// default (QT_DECODE_PDL=0: off); the kernel benchmarks turn it off to time
// the plain launch beside it.
void set_decode_pdl(bool on);
bool decode_pdl();

}  // namespace qtrain
