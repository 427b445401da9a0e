// Where a forward pass starts in the sequence. An eager call knows it on the
// host. A decode step captured once in a CUDA graph is replayed at later
// positions, so there the kernels read it from device memory (`dev`, one I32
// the caller writes before each replay) and `limit` bounds position + T over
// every replay, so tables are sized once. The CPU reference has no graphs and
// uses `first` alone.
#pragma once
#include <cstdint>

namespace qtrain {

struct SeqPos {
  int first = 0;                 // the position on the host (at capture time when dev is set)
  const int32_t* dev = nullptr;  // device copy of the position, read by the kernels when set
  int limit = 0;                 // with dev: every replay has position + T <= limit
  SeqPos(int p = 0) : first(p) {}
  SeqPos(int p, const int32_t* d, int lim) : first(p), dev(d), limit(lim) {}
  // Positions a table must cover for a pass of T tokens, over every replay.
  int extent(int T) const { return dev && limit > first + T ? limit : first + T; }
};

}  // namespace qtrain
