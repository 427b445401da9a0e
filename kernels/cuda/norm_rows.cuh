// Which of norm.cu's forward kernels a row set takes, shared with the kernels
// that must sum a norm's statistics in the same order (ternary_act.cu: the
// SubLN fused with BitNet's 8-bit quantization equals the stored norm, bit for
// bit, only if both reduce alike).
#pragma once
#include <cstdint>

#include "kernels/cuda/context.cuh"

namespace qtrain::cuda {

// Block-per-row kernel: kNormRowThreads threads, the row held in registers as
// norm_row_vecs() vectors of `width` values per thread.
constexpr int kNormRowThreads = 256;
// Warp-per-row kernel: rows in flight per block.
constexpr int kNormRowWarps = 8;

// Vectors per thread of the block-per-row kernel (1, 2, 4 or 6), or 0 where the
// warp-per-row kernel runs: fewer rows than SMs (a decode step's rows) whose
// length fits 6 vectors a thread (BF16: 12,288 values, BitNet's SubLN before
// LLaMA-7B's down projection included).
inline int norm_row_vecs(int64_t N, int64_t C, int width) {
  if (N >= Context::get().sm_count() || C > int64_t(kNormRowThreads) * width * 6) return 0;
  const int64_t v = (C + int64_t(kNormRowThreads) * width - 1) / (int64_t(kNormRowThreads) * width);
  return v <= 2 ? int(v) : v <= 4 ? 4 : 6;
}

}  // namespace qtrain::cuda
