// GPU timing shared by the kernel benchmarks (bench/quant_kernels.cu,
// bench/ternary_kernels.cu), as issue #7 asks: each call uses the next of
// enough weight copies to exceed 2x the 50 MB L2, the timed calls are captured
// in one CUDA graph (no launch overhead either way), median of 5 replays; the
// bandwidth ceiling is a copy kernel's, measured in the same run.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/context.cuh"
#include "kernels/device.h"

namespace qtrain::bench {

constexpr size_t kL2Bytes = 50u << 20;

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median ms per call of fn(0..calls-1) captured in one graph.
inline double graph_ms(const std::function<void(int)>& fn, int calls) {
  cudaStream_t s = cuda::stream();
  for (int i = 0; i < std::min(calls, 3); ++i) fn(i);  // plans, autotuning, pool growth: outside the graph
  cuda_sync();
  cudaGraph_t g;
  cudaGraphExec_t ge;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "capture");
  for (int i = 0; i < calls; ++i) fn(i);
  check(cudaStreamEndCapture(s, &g), "end capture");
  check(cudaGraphInstantiate(&ge, g, 0), "instantiate");
  check(cudaGraphLaunch(ge, s), "launch");
  cuda_sync();
  std::vector<double> ts;
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(ge, s);
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    ts.push_back(ms / calls);
  }
  cudaGraphExecDestroy(ge), cudaGraphDestroy(g), cudaEventDestroy(a), cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[2];
}

// 16-byte loads and stores, grid-stride: what SM-driven traffic (which the
// GEMV is) can reach; a cudaMemcpy D2D would measure the copy engines instead.
__global__ void copy_kernel(int4* __restrict__ y, const int4* __restrict__ x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) y[i] = x[i];
}

inline double copy_gbps() {
  const size_t n = size_t(1) << 29;  // 512 MiB each way
  void *x = cuda_alloc(n), *y = cuda_alloc(n);
  check(cudaMemset(x, 1, n), "memset");  // never time on untouched memory
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "sm count");
  double ms = graph_ms([&](int) {
    copy_kernel<<<sms * 8, 512, 0, cuda::stream()>>>(static_cast<int4*>(y), static_cast<const int4*>(x), n / 16);
  }, 8);
  cuda_free(x), cuda_free(y);
  return 2.0 * double(n) / (ms * 1e-3) / 1e9;
}

// Reads n 16-byte words and keeps one word per thread live, so nothing is
// optimized away: the ceiling of a kernel that only streams `bytes` in.
__global__ void read_kernel(int4* __restrict__ sink, const int4* __restrict__ x, size_t n) {
  int acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int4 v = __ldcs(x + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x7fffffff) sink[0] = make_int4(acc, 0, 0, 0);
}

inline int copies_for(size_t bytes);

// ms to read `bytes` once from DRAM (rotating buffers past the L2, in a graph, as the
// kernels are timed): the roofline of a kernel of that size, launch and ramp-up included.
inline double read_ms(size_t bytes) {
  bytes = (bytes + 15) / 16 * 16;
  const int n = copies_for(bytes);
  std::vector<void*> bufs;
  for (int i = 0; i < n; ++i) {
    bufs.push_back(cuda_alloc(bytes));
    check(cudaMemset(bufs.back(), 1, bytes), "memset");
  }
  void* sink = cuda_alloc(16);
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "sm count");
  const size_t words = bytes / 16;
  const unsigned grid = unsigned(std::min<size_t>(size_t(sms) * 8, (words + 511) / 512));
  double ms = graph_ms([&](int i) {
    read_kernel<<<grid, 512, 0, cuda::stream()>>>(static_cast<int4*>(sink), static_cast<const int4*>(bufs[size_t(i % n)]), words);
  }, 64);
  for (void* b : bufs) cuda_free(b);
  cuda_free(sink);
  return ms;
}

inline int copies_for(size_t bytes) { return int(std::clamp<size_t>((2 * kL2Bytes + bytes - 1) / bytes, 2, 16)); }

// Enough GPU copies of a packed host weight that cycling through them never hits L2.
template <class W>
std::vector<W> gpu_copies(const W& host) {
  std::vector<W> v(size_t(copies_for(host.bytes())));
  for (W& c : v) c = host.to(Device::CUDA);
  return v;
}

// The linear shapes the weight-format benches time: LLaMA-7B's (the decode targets) and SmolLM2-135M's.
struct LinearShape {
  const char* name;
  int64_t out, in;
};
inline constexpr LinearShape kLinearShapes[] = {
    {"llama7b q/k/v/o 4096x4096", 4096, 4096}, {"llama7b gate/up 11008x4096", 11008, 4096},
    {"llama7b down 4096x11008", 4096, 11008},  {"smollm2 q/o 576x576", 576, 576},
    {"smollm2 gate/up 1536x576", 1536, 576},   {"smollm2 down 576x1536", 576, 1536}};

// The value of `flag VALUE` among a bench's arguments (empty without it).
inline std::string bench_arg(int argc, char** argv, const char* flag) {
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == flag) return argv[i + 1];
  return {};
}

// --shapes TEXT: only the shapes whose name holds TEXT (e.g. smollm2: a quicker A/B).
inline bool shape_selected(const LinearShape& sh, const std::string& only) {
  return only.empty() || std::string(sh.name).find(only) != std::string::npos;
}

// A weight-kernel bench's start: its --out PATH (empty without one), an exit with a message where
// there is no GPU, and the device line with the copy kernel's bandwidth, which it returns in *copy_bw.
inline std::string bench_start(const char* name, int argc, char** argv, double* copy_bw) {
  const std::string out_path = bench_arg(argc, argv, "--out");
  if (!cuda_available()) {
    std::fprintf(stderr, "%s: no GPU\n", name);
    std::exit(1);
  }
  *copy_bw = copy_gbps();
  std::printf("device %s, copy kernel %.0f GB/s (read + write)\n", cuda_device_name().c_str(), *copy_bw);
  return out_path;
}

}  // namespace qtrain::bench
