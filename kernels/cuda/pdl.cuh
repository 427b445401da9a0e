// Programmatic dependent launch (sm_90+): a kernel launched with launch_pdl()
// may be scheduled while the kernel before it in the stream is still running,
// so its preamble (prefetching its weights into L2, building lookup tables)
// overlaps the predecessor's tail instead of following it. The contract:
//   - pdl_wait() comes before the kernel reads anything an earlier kernel of
//     the stream wrote, and before it writes anything an earlier one reads:
//     it returns once the predecessor grid has completed and its writes are
//     visible. Before it, only data no kernel of the stream writes (frozen
//     weights, constant tables, kernel parameters) may be touched;
//   - pdl_launch_dependents() lets the next PDL-launched kernel be scheduled
//     (its blocks then run up to their own pdl_wait()); without it the next one
//     is scheduled as this grid's blocks exit.
// Both are no-ops in a kernel launched without the attribute, so a PDL-aware
// kernel is correct launched either way. In a captured CUDA graph the launch
// becomes a programmatic edge (decode steps replay it).
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"

namespace qtrain::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The first statement of a kernel that may be launched with PDL (pdl_small): it
// waits for the kernel before (so nothing of the stream is read or written
// early) and lets the next one be scheduled at once. What it saves is the
// launch gap itself, which is most of a decode step's norms, RoPE and
// pointwise ops (~1.5 us launches around ~1 us of work).
__device__ __forceinline__ void pdl_entry() {
  pdl_wait();
  pdl_launch_dependents();
}

// Whether a launch of `blocks` blocks (at most `per_sm` resident per SM) goes with PDL: one resident
// wave at most (so an early dependent never holds a slot a block of this grid still needs) and
// decode_pdl() on (kernels/device.h; set_decode_pdl(false) turns every programmatic launch off).
bool pdl_small(int64_t blocks, int per_sm = 1);

// kernel<<<grid, block, smem, stream()>>>(args...) with the programmatic
// stream-serialization attribute when `pdl` is set (a plain launch otherwise),
// in thread-block clusters of `cluster` blocks where that is more than one.
template <class... Params, class... Args>
void launch_pdl_cluster(bool pdl, dim3 cluster, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                        Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream();
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = cluster.x, attr[1].val.clusterDim.y = cluster.y, attr[1].val.clusterDim.z = cluster.z;
  cfg.attrs = attr;
  cfg.numAttrs = cluster.x * cluster.y * cluster.z > 1 ? 2 : 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

template <class... Params, class... Args>
void launch_pdl(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args&&... args) {
  launch_pdl_cluster(pdl, dim3(1, 1, 1), kernel, grid, block, smem, std::forward<Args>(args)...);
}

}  // namespace qtrain::cuda
