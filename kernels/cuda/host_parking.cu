// HostParking (kernels/device.h): device bytes parked in pinned host memory on
// a copy stream of their own. Pinned, so the copies are true DMA that overlap
// kernels (a pageable copy would stage through a driver buffer and block).
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/device.h"

namespace qtrain {

struct HostParking::Impl {
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0, bytes = 0;
    cudaEvent_t parked = nullptr, fetched = nullptr;
  };
  cudaStream_t copies = nullptr;
  cudaEvent_t queued = nullptr;  // the compute stream's position a copy starts after
  std::vector<Slot> slots;

  Slot& at(int slot) {
    QT_CHECK(slot >= 0, "HostParking: negative slot");
    if (size_t(slot) >= slots.size()) slots.resize(size_t(slot) + 1);
    Slot& s = slots[size_t(slot)];
    if (!s.parked) {
      CUDA_CHECK(cudaEventCreateWithFlags(&s.parked, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&s.fetched, cudaEventDisableTiming));
    }
    return s;
  }
  // The copy stream waits until the compute stream has run what is queued on it now.
  void after_compute() {
    CUDA_CHECK(cudaEventRecord(queued, cuda::stream()));
    CUDA_CHECK(cudaStreamWaitEvent(copies, queued, 0));
  }
};

HostParking::HostParking() : impl_(std::make_unique<Impl>()) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->copies, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&impl_->queued, cudaEventDisableTiming));
}

HostParking::~HostParking() {
  // No throwing here: a failed GPU is reported by whatever ran before.
  cudaStreamSynchronize(impl_->copies);
  for (auto& s : impl_->slots) {
    if (s.host) cudaFreeHost(s.host);
    if (s.parked) cudaEventDestroy(s.parked);
    if (s.fetched) cudaEventDestroy(s.fetched);
  }
  cudaEventDestroy(impl_->queued);
  cudaStreamDestroy(impl_->copies);
}

void HostParking::park(int slot, const void* src, size_t bytes) {
  Impl::Slot& s = impl_->at(slot);
  if (bytes > s.capacity) {  // the first step (or a longer batch): a copy may still read the old buffer
    CUDA_CHECK(cudaStreamSynchronize(impl_->copies));
    if (s.host) CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    s.capacity = 0;
    CUDA_CHECK(cudaHostAlloc(&s.host, bytes, cudaHostAllocDefault));
    s.capacity = bytes;
  }
  s.bytes = bytes;
  impl_->after_compute();
  CUDA_CHECK(cudaMemcpyAsync(s.host, src, bytes, cudaMemcpyDeviceToHost, impl_->copies));
  CUDA_CHECK(cudaEventRecord(s.parked, impl_->copies));
}

void HostParking::wait_parked(int slot) { CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), impl_->at(slot).parked, 0)); }

void HostParking::fetch(int slot, void* dst) {
  Impl::Slot& s = impl_->at(slot);
  QT_CHECK(s.host, "HostParking::fetch: slot " + std::to_string(slot) + " was never parked");
  impl_->after_compute();
  CUDA_CHECK(cudaMemcpyAsync(dst, s.host, s.bytes, cudaMemcpyHostToDevice, impl_->copies));
  CUDA_CHECK(cudaEventRecord(s.fetched, impl_->copies));
}

void HostParking::wait_fetched(int slot) { CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), impl_->at(slot).fetched, 0)); }

size_t HostParking::host_bytes() const {
  size_t n = 0;
  for (const auto& s : impl_->slots) n += s.capacity;
  return n;
}

}  // namespace qtrain
