// Built when CUDA is off: every CUDA entry point says so plainly.
#ifndef QTRAIN_HAS_CUDA
#include "kernels/device.h"
#include "kernels/error.h"
#include "kernels/kernel_profile.h"

namespace qtrain {

[[noreturn]] static void no_cuda() {
  throw Error("this qtrain was built without CUDA (configure with -DQTRAIN_CUDA=ON on a machine with nvcc)",
              ErrorKind::Runtime);
}
bool cuda_available() { return false; }
bool built_with_cuda() { return false; }
std::string cuda_device_name() { return ""; }
void* cuda_alloc(size_t) { no_cuda(); }
void cuda_free(void*) {}
void cuda_copy(void*, const void*, size_t, int) { no_cuda(); }
void cuda_memset0(void*, size_t) { no_cuda(); }
void cuda_sync() {}
CudaMemoryStats cuda_memory_stats() { return {}; }
size_t cuda_release_cached() { return 0; }
CudaMemoryInfo cuda_memory_info() { return {}; }
CudaGraph::~CudaGraph() = default;
void CudaGraph::begin_capture() { no_cuda(); }
bool CudaGraph::end_capture(std::string*) { no_cuda(); }
void CudaGraph::replay() { no_cuda(); }
bool CudaGraph::current() const { return false; }
void CudaGraph::release() {}
uint64_t cuda_buffer_generation() { return 0; }
void cuda_bump_buffer_generation() {}
struct HostParking::Impl {};
HostParking::HostParking() { no_cuda(); }
HostParking::~HostParking() = default;
void HostParking::park(int, const void*, size_t) { no_cuda(); }
void HostParking::wait_parked(int) {}
void HostParking::fetch(int, void*) { no_cuda(); }
void HostParking::wait_fetched(int) {}
size_t HostParking::host_bytes() const { return 0; }
void set_decode_pdl(bool) {}
bool decode_pdl() { return false; }
std::string kernel_profile_start() { return "this qtrain was built without CUDA"; }
std::vector<KernelTime> kernel_profile_stop() { return {}; }

}  // namespace qtrain
#endif
