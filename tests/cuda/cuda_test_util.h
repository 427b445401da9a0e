// Helpers for the CUDA-vs-CPU tests: the CPU reference runs on the same
// (BF16-rounded where the GPU sees BF16) values as the GPU op.
#pragma once
#include "kernels/device.h"
#include "kernels/tensor.h"
#include "tests/test_util.h"

namespace qtrain::testing {

// The F32 values a BF16 copy of t holds.
inline Tensor round_to(const Tensor& t, DType dt) {
  if (dt == DType::F32) return t.clone();
  return t.to(Device::CPU, dt).to(Device::CPU, DType::F32);
}

// A GPU copy in dtype dt, and the CPU F32 twin with exactly its values.
struct Pair {
  Tensor cpu, gpu;
};
inline Pair pair(const Tensor& host_f32, DType dt) {
  Tensor c = round_to(host_f32, dt);
  return {c, c.to(Device::CUDA, dt)};
}
inline Pair randn_pair(const Shape& s, uint64_t seed, DType dt, float scale = 1.f) {
  return pair(randn(s, seed, scale), dt);
}

inline std::vector<float> vec(const Tensor& t) { return t.to_vector(); }

// Tolerances: BF16 storage (8 bits of mantissa) vs an F32 reference.
constexpr double kBf16Tol = 1e-2;
constexpr double kF32Tol = 1e-5;
inline double tol_for(DType dt) { return dt == DType::BF16 ? kBf16Tol : 2e-5; }

#define EXPECT_CLOSE(gpu_tensor, cpu_tensor, tol)                                        \
  do {                                                                                   \
    double qt_err_ = ::qtrain::testing::norm_rel_err(::qtrain::testing::vec(gpu_tensor), \
                                                     ::qtrain::testing::vec(cpu_tensor)); \
    EXPECT_LT(qt_err_, (tol)) << #gpu_tensor " vs " #cpu_tensor;                        \
  } while (0)

}  // namespace qtrain::testing
