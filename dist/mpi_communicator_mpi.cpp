// MPI communicator: collectives on host buffers. Every collective is issued
// non-blocking and polled, so a dead or stuck peer ends the job after
// --comm-timeout seconds with a message naming this rank, instead of a hang.
#include <mpi.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "dist/backends.h"

namespace qtrain {

namespace {

bool g_left_after_error = false;  // set when a rank unwinds out of training with an error

// At exit: a clean rank finalizes; a rank leaving after an error must not,
// because MPI_Finalize waits for peers that may be blocked waiting on it.
// Exiting without finalize makes mpirun end the whole job at once.
void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && !g_left_after_error) MPI_Finalize();
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(int comm_timeout_s) : timeout_s_(comm_timeout_s) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      // Only the main thread calls MPI (OpenMP workers never do).
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed (is this process under a working mpirun/srun?)", ErrorKind::Runtime);
      std::atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    // A private duplicate keeps our traffic apart from anyone else's.
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm local;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_world_);
    MPI_Comm_free(&local);
  }

  ~MpiCommunicator() override {
    if (std::uncaught_exceptions() > 0 && world_ > 1) {
      g_left_after_error = true;
      spdlog::error("rank {}/{}: leaving the job after an error", rank_, world_);
    }
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_world() const override { return local_world_; }
  std::string name() const override { return "mpi"; }

  void allreduce_sum(Tensor t) override {
    QT_CHECK(t.dtype() == DType::F32, "MPI allreduce_sum of a non-F32 tensor");
    if (t.is_cuda()) {  // no CUDA-aware MPI assumed: stage through the host
      Tensor host = t.to(Device::CPU);
      allreduce_sum(host);
      t.copy_from(host);
      return;
    }
    float* p = t.f32();
    for (int64_t done = 0; done < t.numel();) {  // MPI counts are int
      int n = int(std::min<int64_t>(t.numel() - done, INT_MAX / 2));
      MPI_Request req;
      check(MPI_Iallreduce(MPI_IN_PLACE, p + done, n, MPI_FLOAT, MPI_SUM, comm_, &req), "MPI_Iallreduce");
      wait(req, "all-reduce");
      done += n;
    }
  }

  void allreduce_sum(double* v, int n) override {
    MPI_Request req;
    check(MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, comm_, &req), "MPI_Iallreduce");
    wait(req, "all-reduce");
  }

  void broadcast(Tensor t, int root) override {
    Tensor host = t.is_cuda() ? t.to(Device::CPU) : t;
    auto* p = static_cast<char*>(host.raw());
    for (size_t done = 0; done < host.nbytes();) {
      int n = int(std::min<size_t>(host.nbytes() - done, INT_MAX / 2));
      MPI_Request req;
      check(MPI_Ibcast(p + done, n, MPI_BYTE, root, comm_, &req), "MPI_Ibcast");
      wait(req, "broadcast");
      done += size_t(n);
    }
    if (t.is_cuda()) t.copy_from(host);
  }

  void barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    wait(req, "barrier");
  }

  void abort(const std::string& why, int exit_code) override {
    std::fprintf(stderr, "qtrain: rank %d/%d: error: %s\nqtrain: aborting all ranks\n", rank_, world_, why.c_str());
    std::fflush(stderr);
    g_left_after_error = true;
    MPI_Abort(MPI_COMM_WORLD, exit_code);  // mpirun exits with it
    std::_Exit(exit_code);  // MPI_Abort does not return; this is for broken MPIs
  }

 private:
  void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error("rank " + std::to_string(rank_) + ": " + what + " failed: " + std::string(msg, size_t(len)),
                ErrorKind::Runtime);
  }

  // Polls instead of MPI_Wait so that a peer that died or hangs becomes a
  // clean abort after the timeout. Yielding keeps oversubscribed ranks moving.
  void wait(MPI_Request& req, const char* what) {
    auto start = std::chrono::steady_clock::now();
    for (int spins = 0;; ++spins) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      if (spins > 1000) std::this_thread::yield();
      if (timeout_s_ > 0 && (spins & 1023) == 0 &&
          std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s_))
        abort(std::string(what) + " did not complete within --comm-timeout " + std::to_string(timeout_s_) +
              " s: a peer rank died or is stuck", 1);
    }
  }

  int timeout_s_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int comm_timeout_s) {
  return std::make_unique<MpiCommunicator>(comm_timeout_s);
}

}  // namespace qtrain
