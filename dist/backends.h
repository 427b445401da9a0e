// Factories of the transport-specific communicators. Each is defined in a
// file the build compiles only when its transport is available
// (*_mpi.cpp: MPI; *_nccl.cpp: CUDA + NCCL + MPI); bootstrap.cpp picks one.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace qtrain {

// MPI_Init_thread (once per process), MPI_ERRORS_RETURN, local rank from
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). Collectives that take longer
// than comm_timeout_s abort the job naming the rank.
std::unique_ptr<Communicator> make_mpi_communicator(int comm_timeout_s);

// NCCL over the ranks of `mpi` (used for the unique-id broadcast and for
// host scalars). Selects GPU local_rank; more local ranks than GPUs is an error.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi, int comm_timeout_s);

}  // namespace qtrain
