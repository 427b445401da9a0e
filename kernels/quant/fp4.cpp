#include "kernels/quant/fp4.h"

namespace qtrain::quant {

// bnb's FP4 code, index = sign bit | 3 value bits (values exactly as bnb's
// float32 table: thirds are float32-rounded).
const std::array<float, 16>& fp4_code() {
  static const std::array<float, 16> kCode = {
      0.f,  0x1.555556p-8f,  0x1.555556p-1f,  1.f,  0x1.555556p-2f,  0.5f,  0x1.555556p-3f,  0.25f,
      0.f, -0x1.555556p-8f, -0x1.555556p-1f, -1.f, -0x1.555556p-2f, -0.5f, -0x1.555556p-3f, -0.25f};
  return kCode;
}

}  // namespace qtrain::quant
