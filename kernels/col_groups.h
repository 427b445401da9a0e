// Column groups of row-major [N, W] activations: the average pool and the
// repeat-interleave that Q-BLoRA wraps its adapter in (each is the other's
// backward). Group j of a row is columns [j k, (j + 1) k). Activations any
// float dtype; alpha is applied in F32.
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// out[n, j] = alpha * sum_{t < k} x[n, j k + t]   (x [N, W], out [N, W / k]; alpha = 1/k pools)
QT_OP(void, sum_col_groups, (Tensor out, Tensor x, int64_t k, float alpha))
// out[n, j k + t] += alpha * x[n, j]              (x [N, W / k], out [N, W]: torch.repeat_interleave(x, k, -1))
QT_OP(void, add_repeat_cols, (Tensor out, Tensor x, int64_t k, float alpha))

}  // namespace qtrain
