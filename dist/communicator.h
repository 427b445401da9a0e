// Communicator: the collectives data-parallel training needs, over whatever
// transport the run has: NCCL (GPU tensors), MPI (host buffers, so CI runs
// real multi-rank jobs on CPUs) or nothing (one rank, every call a no-op).
// Every rank must make the same calls in the same order.
#pragma once
#include <memory>
#include <string>

#include "kernels/tensor.h"

namespace qtrain {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;   // rank among the ranks on this host
  virtual int local_world() const = 0;  // ranks on this host

  // Sum over ranks, in place. t: F32, contiguous, on a device the
  // implementation supports (NCCL: CUDA; MPI: CPU, CUDA staged via the host).
  virtual void allreduce_sum(Tensor t) = 0;
  virtual void allreduce_sum(double* v, int n) = 0;  // host scalars (token counts, losses)
  virtual void broadcast(Tensor t, int root) = 0;
  virtual void barrier() = 0;

  // Asynchronous all-reduce for overlapping communication with backward:
  // start enqueues the sum of t (after the work already issued on the compute
  // stream); wait blocks until every started one is complete, and orders later
  // compute after them. Implementations without asynchrony finish in start.
  virtual void start_allreduce_sum(Tensor t) { allreduce_sum(t); }
  virtual void wait_allreduces() {}
  // Of the last wait_allreduces(): seconds the communication ran past the end
  // of the compute issued before it, measured on the device (CUDA events), or
  // a negative value where the backend cannot tell (then host time is used).
  virtual double last_exposed_seconds() const { return -1.0; }

  // Ends every rank of the job after a failure on this one: prints `why`
  // with this rank's number and aborts the communicator and the job. Returns
  // only for a single rank, where there is nothing to take down; the caller
  // then reports the error as usual. Call it from the handler that catches
  // an error in a multi-rank run, so peers do not wait on this rank forever.
  // exit_code is the job's: 2 for bad input (as a single process exits), 1 otherwise.
  virtual void abort(const std::string& why, int exit_code) = 0;

  virtual std::string name() const = 0;  // "single", "mpi", "nccl"
};

// One rank, no transport: every collective is the identity.
class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_world() const override { return 1; }
  void allreduce_sum(Tensor) override {}
  void allreduce_sum(double*, int) override {}
  void broadcast(Tensor, int) override {}
  void barrier() override {}
  void abort(const std::string& why, int exit_code) override;
  std::string name() const override { return "single"; }
};

}  // namespace qtrain
