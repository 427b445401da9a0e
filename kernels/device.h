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

}  // namespace qtrain
