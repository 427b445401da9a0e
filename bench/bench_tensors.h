// Random inputs for the kernel benchmarks (values do not matter for timing,
// only that they are finite and not degenerate).
#pragma once
#include <random>

#include "kernels/tensor.h"

namespace qtrain::bench {

// Uniform in [-scale, scale], F32 on the host.
inline Tensor random_tensor(const Shape& s, float scale, uint64_t seed) {
  Tensor h = Tensor::empty(s, DType::F32);
  std::mt19937 rng{uint32_t(seed)};
  std::uniform_real_distribution<float> u(-scale, scale);
  float* p = h.f32();
  for (int64_t i = 0; i < h.numel(); ++i) p[i] = u(rng);
  return h;
}

}  // namespace qtrain::bench
