// The CPU LM-head cross-entropy with an explicit rows-per-chunk, so tests can
// force many small chunks. lm_head_cross_entropy (kernels/loss.h) picks the
// chunk from a memory budget and calls this.
#pragma once
#include <cstdint>

#include "kernels/tensor.h"

namespace qtrain::cpu {

double lm_head_cross_entropy_chunked(Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale,
                                     int64_t chunk_rows);

}  // namespace qtrain::cpu
