// Picks the communicator for this process. Without an MPI launcher in the
// environment, no MPI call is made and the run is a single rank (the
// single-GPU / single-CPU fallback). Under mpirun/srun: MPI is initialised,
// and the gradient transport is NCCL for --device cuda, MPI for --device cpu.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace qtrain {

// Call before allocating anything on the GPU: for CUDA it selects the
// device of this rank (its local rank).
std::unique_ptr<Communicator> make_communicator(Device device, int comm_timeout_s);

}  // namespace qtrain
