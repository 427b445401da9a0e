// Column sums over rows (bias_backward, col_dot): a block of (32, 8) threads
// owns a slice of columns; its 8 row lanes (threadIdx.y) stride over the
// block's share of the rows, park their partial sums in shared memory
// part[8][W], and one thread per column adds the 8 in lane order before one
// atomicAdd per column per block.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace qtrain::cuda {

// col_blocks blocks across the columns, and down the rows enough blocks for
// blocks_per_sm on every SM, yet at least 64 rows each (fewer atomics).
inline dim3 col_sums_grid(int64_t col_blocks, int64_t rows, int blocks_per_sm) {
  const int64_t row_blocks =
      std::min<int64_t>((rows + 63) / 64, std::max<int64_t>(1, blocks_per_sm * Context::get().sm_count() / col_blocks));
  return dim3(unsigned(col_blocks), unsigned(std::max<int64_t>(row_blocks, 1)));
}

// Column t's total of the 8 row lanes' partials, in lane order (after the __syncthreads).
template <int W>
__device__ __forceinline__ float sum_row_lanes(const float (&part)[8][W], int t) {
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 8; ++k) s += part[k][t];
  return s;
}

}  // namespace qtrain::cuda
