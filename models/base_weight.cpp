#include "models/base_weight.h"

#include "kernels/matmul.h"

namespace qtrain {

void DenseWeight::forward(Tensor y, Tensor x) const { gemm(y, x, w_, false, true); }

void DenseWeight::backward_input(Tensor dx, Tensor dy, float beta) const { gemm(dx, dy, w_, false, false, 1.f, beta); }

}  // namespace qtrain
