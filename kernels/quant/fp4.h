// bitsandbytes FP4 (e2m1 without inf/nan, bias so the largest value is 1):
// same blockwise layout as NF4 (nf4.h); only the code differs. Its code is
// not sorted, so the nearest-value search runs over the sorted code and maps
// back through the permutation bnb uses (argsort: the two zeros map to index
// 0 for ties at 0).
#pragma once
#include "kernels/quant/nf4.h"

namespace qtrain::quant {

const std::array<float, 16>& fp4_code();

inline Packed4 quantize_fp4(const float* w, int64_t n, bool double_quant) {
  return quantize_4bit(w, n, Code4::FP4, double_quant);
}

}  // namespace qtrain::quant
