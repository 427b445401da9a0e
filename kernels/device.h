// Device memory and availability. With QTRAIN_HAS_CUDA unset these report
// "no GPU" and refuse CUDA allocations with a clear error.
#pragma once
#include <cstddef>
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

// The caching allocator's bytes: handed out now, the most ever handed out at
// once (peak memory of qtrain's tensors), and held from the driver.
struct CudaMemoryStats {
  size_t in_use = 0, peak = 0, reserved = 0;
};
CudaMemoryStats cuda_memory_stats();

}  // namespace qtrain
