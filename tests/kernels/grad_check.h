// Finite-difference gradient checks for the CPU kernels. A backward is checked
// through the scalar L = sum(out * R) for a fixed random R: its analytic
// gradient (backward with dout = R) must match central differences
// (L(x + h e_i) - L(x - h e_i)) / 2h, with L summed in double.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace qtrain::testing {

// sum(out * r) in double.
inline double weighted_sum(const Tensor& out, const Tensor& r) {
  const float *po = out.f32(), *pr = r.f32();
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += double(po[i]) * pr[i];
  return s;
}

// Central differences of loss() with respect to every element of `input`
// (which loss() must read). The input is restored afterwards.
inline std::vector<float> numeric_grad(Tensor input, const std::function<double()>& loss, float h = 1e-2f) {
  std::vector<float> g(size_t(input.numel()));
  float* p = input.f32();
  for (int64_t i = 0; i < input.numel(); ++i) {
    const float keep = p[i];
    p[i] = keep + h;
    const double up = loss();
    p[i] = keep - h;
    const double down = loss();
    p[i] = keep;
    // Divide by the step actually taken (keep +- h is rounded in fp32).
    g[size_t(i)] = float((up - down) / (double(keep + h) - double(keep - h)));
  }
  return g;
}

// Norm-relative error of the analytic gradient against finite differences.
inline double grad_error(const Tensor& analytic, const std::vector<float>& numeric) {
  return norm_rel_err(analytic.to_vector(), numeric);
}

constexpr double kGradTol = 1e-2;

#define EXPECT_GRAD_MATCHES(analytic, numeric, what)                                 \
  do {                                                                               \
    const double err_ = ::qtrain::testing::grad_error((analytic), (numeric));       \
    EXPECT_LT(err_, ::qtrain::testing::kGradTol) << (what) << ": analytic vs finite differences"; \
  } while (0)

}  // namespace qtrain::testing
