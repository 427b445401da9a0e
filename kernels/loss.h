// The LM head fused with softmax cross-entropy, chunked over rows so the
// [N, V] logits never exist whole in memory.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

constexpr int32_t kIgnoreIndex = -100;

// x: [N,C] final hidden states; w: [V,C] (lm_head, or the tied wte); targets: I32 [N],
// kIgnoreIndex rows contribute nothing. Returns the SUM of per-row losses (natural
// log), accumulated in double. If dx is defined it is overwritten with
// grad_scale * d(sum)/dx; if dw is defined, grad_scale * d(sum)/dw is added to it.
// (grad_scale is usually 1 / global count of predicted tokens.)
QT_OP(double, lm_head_cross_entropy, (Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale))

// Rows per chunk of the CUDA loss (kernels/cuda/loss.cu) for N rows of a V vocabulary, given the F32
// logits scratch it may take: the rows that fit, a multiple of 128 above 128. The scratch is a context
// slot outside the allocator that nvidia-smi counts for the whole run, so it is sized to the work: a
// quarter of the whole [N, V] logits, at least 64 MiB and at most 256 MiB. Four chunks of a short batch
// (LLaMA-7B at 1 x 2048: 512 rows each) run the lm_head GEMMs as fast as one, and 192 MiB of GPU memory
// stay free; a large batch (SmolLM2 at 16 x 1024, whose 49k vocabulary makes the lm_head a large share
// of the step) keeps 256 MiB chunks, as large ones measured 2-3% faster there (H200, 2026-12-05).
inline int64_t loss_chunk_rows(int64_t N, int64_t V, size_t budget_bytes = 0) {
  const int64_t ld = (V + 7) / 8 * 8;  // the scratch's padded row (32-byte aligned F32 rows)
  if (budget_bytes == 0) {
    const double whole = double(N) * double(ld) * 4, lo = 64.0 * (1 << 20), hi = 256.0 * (1 << 20);
    budget_bytes = size_t(std::min(hi, std::max(lo, whole / 4)));
  }
  int64_t R = std::max<int64_t>(1, std::min<int64_t>(N, int64_t(budget_bytes / (size_t(ld) * 4))));
  return R > 128 ? R / 128 * 128 : R;
}
inline size_t loss_chunk_bytes(int64_t N, int64_t V) { return size_t(loss_chunk_rows(N, V)) * size_t((V + 7) / 8 * 8) * 4; }

}  // namespace qtrain
