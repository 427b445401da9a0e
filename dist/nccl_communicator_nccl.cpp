// NCCL communicator for GPU tensors. The communicator is created
// non-blocking (ncclCommInitRankConfig, blocking = 0) so that every NCCL call
// returns at once and this rank polls for completion, async errors and a
// timeout (--comm-timeout); on failure it aborts the NCCL communicator and the
// MPI job, naming the rank. All-reduces run on a stream of their own, ordered
// after the compute stream by events, so they overlap with backward.
// Host-side work (the unique-id broadcast, scalar sums, barriers) goes over MPI.
#ifdef QTRAIN_HAS_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <thread>

#include "dist/backends.h"

#if __has_include("kernels/cuda/context.cuh")
#include "kernels/cuda/context.cuh"
static cudaStream_t compute_stream() { return qtrain::cuda::stream(); }
#else
static cudaStream_t compute_stream() { return cudaStreamLegacy; }
#endif

namespace qtrain {

namespace {

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, int comm_timeout_s)
      : host_(std::move(host)), timeout_s_(comm_timeout_s) {
    const int rank = host_->rank(), world = host_->world();
    int gpus = 0;
    cuda(cudaGetDeviceCount(&gpus), "cudaGetDeviceCount");
    if (host_->local_world() > gpus)
      throw Error("rank " + std::to_string(rank) + ": " + std::to_string(host_->local_world()) +
                  " ranks on this host but only " + std::to_string(gpus) +
                  " GPUs (one GPU per rank; use fewer ranks per host, or --device cpu)");
    cuda(cudaSetDevice(host_->local_rank()), "cudaSetDevice");

    ncclUniqueId id{};
    if (rank == 0) nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    static_assert(sizeof(id) % sizeof(float) == 0);
    host_->broadcast(Tensor::wrap(&id, {int64_t(sizeof(id) / sizeof(float))}, DType::F32), 0);

    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    nccl(ncclCommInitRankConfig(&comm_, world, id, rank, &config), "ncclCommInitRankConfig");
    wait_comm_ready("ncclCommInitRankConfig");
    cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
    cuda(cudaEventCreate(&compute_end_), "cudaEventCreate");
    cuda(cudaEventCreate(&comm_end_), "cudaEventCreate");
    int nccl_version = 0;
    ncclGetVersion(&nccl_version);
    if (rank == 0) spdlog::info("nccl {}: {} ranks, comm timeout {} s", nccl_version, world, timeout_s_);
  }

  ~NcclCommunicator() override {
    if (!comm_) return;
    if (std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);  // peers may be stuck; never wait for them here
    } else {
      // Orderly teardown of a non-blocking comm: finalize, wait, destroy.
      ncclResult_t st = ncclCommFinalize(comm_);
      auto start = std::chrono::steady_clock::now();
      while (st == ncclInProgress && std::chrono::steady_clock::now() - start < std::chrono::seconds(timeout_s_)) {
        std::this_thread::yield();
        ncclCommGetAsyncError(comm_, &st);
      }
      if (st == ncclSuccess)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
    }
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaEventDestroy(compute_end_);
    cudaEventDestroy(comm_end_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int world() const override { return host_->world(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_world() const override { return host_->local_world(); }
  std::string name() const override { return "nccl"; }

  void start_allreduce_sum(Tensor t) override {
    QT_CHECK(t.dtype() == DType::F32, "NCCL allreduce_sum of a non-F32 tensor");
    if (!t.is_cuda()) {  // host tensors go over MPI
      host_->allreduce_sum(t);
      return;
    }
    after_compute();
    nccl(ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    wait_comm_ready("ncclAllReduce");
    pending_ = true;
  }

  void wait_allreduces() override {
    if (!pending_) return;
    pending_ = false;
    // Timing pair: where the compute stream's work (backward) ends, and where
    // the last collective ends. The host may block here long before backward
    // has run on the GPU, so host time overstates what communication costs.
    cuda(cudaEventRecord(compute_end_, compute_stream()), "cudaEventRecord");
    cuda(cudaEventRecord(comm_end_, stream_), "cudaEventRecord");
    cuda(cudaEventRecord(done_, stream_), "cudaEventRecord");
    // Later compute (the optimizer) runs after the reduced gradients exist.
    cuda(cudaStreamWaitEvent(compute_stream(), done_, 0), "cudaStreamWaitEvent");
    // Poll rather than block, so an async NCCL error or a dead peer ends the job.
    auto start = std::chrono::steady_clock::now();
    for (;;) {
      cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) {
        float ms = 0.f;
        last_exposed_s_ = cudaEventElapsedTime(&ms, compute_end_, comm_end_) == cudaSuccess ? std::max(0.f, ms) / 1e3 : -1.0;
        return;
      }
      if (q != cudaErrorNotReady) fail(std::string("all-reduce: CUDA error ") + cudaGetErrorString(q));
      check_async("all-reduce");
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s_))
        fail("all-reduce did not complete within --comm-timeout " + std::to_string(timeout_s_) +
             " s: a peer rank died or is stuck");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  double last_exposed_seconds() const override { return last_exposed_s_; }

  void allreduce_sum(Tensor t) override {
    start_allreduce_sum(t);
    wait_allreduces();
  }
  void allreduce_sum(double* v, int n) override { host_->allreduce_sum(v, n); }

  void broadcast(Tensor t, int root) override {
    if (!t.is_cuda()) return host_->broadcast(t, root);
    after_compute();
    nccl(ncclBroadcast(t.raw(), t.raw(), t.nbytes(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
    wait_comm_ready("ncclBroadcast");
    pending_ = true;
    wait_allreduces();
  }

  void barrier() override { host_->barrier(); }

  void abort(const std::string& why, int exit_code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->abort(why, exit_code);
  }

 private:
  // The collective must see the gradients the compute stream has produced so far.
  void after_compute() {
    cuda(cudaEventRecord(ready_, compute_stream()), "cudaEventRecord");
    cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
  }

  [[noreturn]] void fail(const std::string& why) {
    abort(why, 1);  // does not return in a multi-rank job
    throw Error("rank " + std::to_string(rank()) + ": " + why, ErrorKind::Runtime);
  }

  void check_async(const char* what) {
    ncclResult_t st = ncclSuccess;
    ncclCommGetAsyncError(comm_, &st);
    if (st != ncclSuccess && st != ncclInProgress)
      fail(std::string(what) + ": NCCL error: " + ncclGetErrorString(st) + " (" + ncclGetLastError(comm_) + ")");
  }

  // A non-blocking comm may return ncclInProgress; the next NCCL call must
  // wait until the communicator reports ncclSuccess.
  void wait_comm_ready(const char* what) {
    auto start = std::chrono::steady_clock::now();
    for (;;) {
      ncclResult_t st = ncclSuccess;
      ncclCommGetAsyncError(comm_, &st);
      if (st == ncclSuccess) return;
      if (st != ncclInProgress)
        fail(std::string(what) + ": NCCL error: " + ncclGetErrorString(st) + " (" + ncclGetLastError(comm_) + ")");
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s_))
        fail(std::string(what) + " did not complete within --comm-timeout " + std::to_string(timeout_s_) + " s");
      std::this_thread::yield();
    }
  }

  void nccl(ncclResult_t rc, const char* what) {
    if (rc == ncclSuccess || rc == ncclInProgress) return;
    std::string msg = std::string(what) + " failed: " + ncclGetErrorString(rc);
    if (comm_) fail(msg + " (" + ncclGetLastError(comm_) + ")");
    throw Error("rank " + std::to_string(host_->rank()) + ": " + msg, ErrorKind::Runtime);
  }

  void cuda(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess)
      throw Error("rank " + std::to_string(host_->rank()) + ": " + what + " failed: " + cudaGetErrorString(rc),
                  ErrorKind::Runtime);
  }

  std::unique_ptr<Communicator> host_;
  int timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  cudaEvent_t compute_end_ = nullptr, comm_end_ = nullptr;  // timing (last_exposed_seconds)
  double last_exposed_s_ = -1.0;
  bool pending_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi, int comm_timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(mpi), comm_timeout_s);
}

}  // namespace qtrain
#endif  // QTRAIN_HAS_NCCL
