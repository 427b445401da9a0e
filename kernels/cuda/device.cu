// kernels/device.h on a CUDA build. Copies and memsets are queued on the
// context's stream so they stay ordered with every op.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

// A caching allocator: freed blocks go to per-size free lists and are handed
// out again, so after the first training step no cudaMalloc/cudaFree happens
// inside a step (cudaFree synchronises the whole device, which would also
// serialise NCCL against backward). Reuse is safe because every kernel runs on
// the one compute stream in order; the NCCL stream only touches the persistent
// gradient buffer. Sizes are rounded so similar shapes share blocks.
namespace {

// Pool 0 is shared; a captured CUDA graph owns a private pool (see CudaGraph)
// whose free blocks only that graph's capture reuses.
using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // rounded size -> blocks

struct BlockPool {
  std::mutex mu;
  FreeLists free;                                // pool 0's cached blocks
  std::unordered_map<int, FreeLists> private_free;
  std::unordered_map<void*, size_t> size_of;     // live and cached blocks
  std::unordered_map<void*, int> owner;          // blocks of a private pool
  int capturing = 0, next_pool = 1;              // the pool a capture in progress draws from
  size_t in_use = 0, peak = 0, reserved = 0;
};

BlockPool& pool() {
  static BlockPool* p = new BlockPool;  // never destroyed: Tensors may be freed at exit
  return *p;
}

// Gives the driver back pool 0's cached free blocks (the caller holds P.mu).
// cudaFree waits for the device anyway; the explicit sync says so.
size_t release_free_locked(BlockPool& P) {
  size_t freed = 0;
  if (P.free.empty()) return 0;
  cudaDeviceSynchronize();
  for (auto& [sz, blocks] : P.free)
    for (void* q : blocks) {
      cudaFree(q);
      P.size_of.erase(q);
      P.reserved -= sz;
      freed += sz;
    }
  P.free.clear();
  return freed;
}

}  // namespace

size_t cuda_release_cached() {
  if (!cuda_available()) return 0;
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return P.capturing ? 0 : release_free_locked(P);  // no cudaFree inside a capture
}

void* cuda_alloc(size_t bytes) {
  if (!cuda_available()) throw Error("cuda_alloc: no CUDA device is available", ErrorKind::Runtime);
  BlockPool& P = pool();
  const size_t size = cuda_block_bytes(std::max<size_t>(bytes, 1));
  std::lock_guard<std::mutex> lock(P.mu);
  void* p = nullptr;
  // While capturing, a block the capture itself freed earlier is reused first (safe inside it).
  std::vector<void*>* own = P.capturing ? &P.private_free[P.capturing][size] : nullptr;
  auto& list = own && !own->empty() ? *own : P.free[size];
  if (!list.empty()) {
    p = list.back();
    list.pop_back();
  } else {
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
      // Out of memory with blocks cached for other sizes: give them back and retry once.
      cudaGetLastError();
      release_free_locked(P);
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw Error("cudaMalloc of " + std::to_string(bytes) + " bytes failed (" + cudaGetErrorString(e) + "); free " +
                      std::to_string(free_b >> 20) + " MiB of " + std::to_string(total_b >> 20) + " MiB, " +
                      std::to_string(P.in_use >> 20) + " MiB in use by qtrain",
                  ErrorKind::OutOfMemory);
    }
    P.size_of[p] = size;
    P.reserved += size;
  }
  if (P.capturing) P.owner[p] = P.capturing;
  P.in_use += size;
  P.peak = std::max(P.peak, P.in_use);
  return p;
}

// Called from Tensor destructors, possibly at process exit: never throws.
void cuda_free(void* p) {
  if (!p) return;
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.size_of.find(p);
  if (it == P.size_of.end()) return;
  P.in_use -= it->second;
  // A block freed while capturing may be one the captured ops use: the graph keeps it.
  if (P.capturing) P.owner[p] = P.capturing;
  auto own = P.owner.find(p);
  if (own != P.owner.end()) {
    P.private_free[own->second][it->second].push_back(p);
    return;
  }
  P.free[it->second].push_back(p);
}

// Graph pools: begin routes allocations to a new private pool, end stops it,
// release hands the pool's blocks back to everyone.
static int pool_begin_capture() {
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  QT_CHECK(P.capturing == 0, "CudaGraph: captures do not nest");
  return P.capturing = P.next_pool++;
}

static void pool_end_capture() {
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.capturing = 0;
}

static void pool_release(int id) {
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  for (auto& [size, blocks] : P.private_free[id])
    for (void* b : blocks) {
      P.owner.erase(b);
      P.free[size].push_back(b);
    }
  P.private_free.erase(id);
  // Blocks still held (a tensor made during the capture and kept) rejoin pool 0 when freed.
  for (auto it = P.owner.begin(); it != P.owner.end();) it = it->second == id ? P.owner.erase(it) : std::next(it);
}

static std::atomic<uint64_t> g_buffer_generation{1};
uint64_t cuda_buffer_generation() { return g_buffer_generation.load(); }
void cuda_bump_buffer_generation() { ++g_buffer_generation; }

// QT_DECODE_PDL=0 starts with it off (to time a decode step without it).
static std::atomic<bool> g_decode_pdl{[] {
  const char* e = std::getenv("QT_DECODE_PDL");
  return !e || std::string(e) != "0";
}()};
void set_decode_pdl(bool on) { g_decode_pdl = on; }
bool decode_pdl() { return g_decode_pdl.load(); }
namespace cuda {
bool pdl_small(int64_t blocks, int per_sm) {
  return qtrain::decode_pdl() && blocks <= int64_t(per_sm) * Context::get().sm_count();
}
}  // namespace cuda

CudaGraph::~CudaGraph() { release(); }

void CudaGraph::release() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  exec_ = graph_ = nullptr;
  if (pool_) {
    // Replays still queued may use the pool's blocks: wait before handing them out.
    cudaStreamSynchronize(cuda::stream());
    pool_release(pool_);
  }
  pool_ = 0;
}

void CudaGraph::begin_capture() {
  release();
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  pool_ = pool_begin_capture();
  // Relaxed: a first-time cudaMalloc in the allocator is allowed while capturing.
  const cudaError_t e = cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    pool_end_capture();
    CUDA_CHECK(e);
  }
}

bool CudaGraph::end_capture(std::string* why) {
  cudaGraph_t g = nullptr;
  const cudaError_t e = cudaStreamEndCapture(cuda::stream(), &g);
  pool_end_capture();
  cudaError_t inst = e;
  cudaGraphExec_t x = nullptr;
  if (e == cudaSuccess) inst = cudaGraphInstantiate(&x, g, 0);
  if (inst != cudaSuccess) {
    cudaGetLastError();  // capture errors are not sticky: clear and carry on eagerly
    if (g) cudaGraphDestroy(g);
    if (why) *why = cudaGetErrorString(inst);
    release();
    return false;
  }
  graph_ = g;
  exec_ = x;
  generation_ = cuda_buffer_generation();
  return true;
}

void CudaGraph::replay() {
  QT_CHECK(exec_, "CudaGraph::replay: nothing captured");
  CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), cuda::stream()));
}

bool CudaGraph::current() const { return exec_ && generation_ == cuda_buffer_generation(); }

CudaMemoryInfo cuda_memory_info() {
  CudaMemoryInfo m;
  if (!cuda_available() || cudaMemGetInfo(&m.free, &m.total) != cudaSuccess) return {};
  m.device_used = m.total - m.free;
  // Blocks cached by the allocator are free for qtrain's next tensors.
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  m.free += P.reserved - P.in_use;
  return m;
}

CudaMemoryStats cuda_memory_stats() {
  BlockPool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return {P.in_use, P.peak, P.reserved};
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
