// Pins each rank's threads near its device, so that with several ranks per
// host no two ranks share cores and host memory stays on the local NUMA node
// (first touch by bound threads). With hwloc (QTRAIN_HAS_HWLOC):
//  - CUDA: the cores closest to the rank's GPU (hwloc/cudart.h); ranks whose
//    GPUs hang off the same socket split that socket's cores;
//  - CPU: the host's cores split evenly over the local ranks.
// With several local ranks and no OMP_NUM_THREADS, each rank's OpenMP team
// is sized to its share of cores (also with --no-bind or without hwloc).
#pragma once
#include <string>

#include "dist/communicator.h"

namespace qtrain {

// Returns the description it logs, e.g. "rank 1/4: bound to cores 4-7 (PUs 4-7,16-19) near GPU 1, 4 OpenMP threads".
std::string bind_rank(const Communicator& comm, Device device, bool enabled);

// The contiguous share of `n` items that member `index` of `count` gets:
// [begin, end). With fewer items than members, members share items round-robin.
struct Share {
  int begin, end;
};
Share split_evenly(int n, int index, int count);

}  // namespace qtrain
