// Steps 3 and 4 of LLM.int8 (int8_matmul.cu) for x rows already quantized:
// the int8 tensor-core product with the weight's codes, then the epilogue
// y = acc * (xabs / 127) * (wabs / 127) (+ the outlier columns idx[0..*count)
// of x in F32 when count is given). The W2A8 product's general path
// (ternary.cu) runs it on rows quantized once for several weights.
#pragma once
#include "kernels/cuda/common.cuh"
#include "kernels/quant_matmul.h"

namespace qtrain::cuda {

void int8_rows_matmul(FloatPtr y, const int8_t* xq, const float* xabs, int64_t n, const Int8Tensor& w,
                      const int* idx = nullptr, const int* count = nullptr, FloatPtr x = {});

}  // namespace qtrain::cuda
