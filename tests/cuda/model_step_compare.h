// A model's training step on the GPU against the same step on the CPU backend
// (the CUDA model tests): the mean loss and every parameter's gradient.
#pragma once
#include <string>
#include <vector>

#include "kernels/device.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace qtrain::testing {

// One forward + backward of m on batch (the loss's gradient scaled by scale):
// the mean loss and each parameter's gradient, one vector per parameter.
struct StepGrads {
  double loss = 0;
  std::vector<std::vector<float>> grads;
};
inline StepGrads step_param_grads(Model& m, const TokenBatch& batch, float scale) {
  StepGrads out;
  const LossSum s = m.forward(batch, scale);
  m.backward();
  for (auto& p : m.params().params()) out.grads.push_back(p.grad.to_vector());
  out.loss = s.sum / double(s.count);
  return out;
}

// make(dev) builds the model on a device; its step on the GPU against its step
// on the CPU (run first): the loss within 2e-2 relative (BF16 activations),
// each gradient within grad_tol (norm_rel_err). `what` names the case.
template <class Make>
void expect_gpu_step_matches_cpu(Make make, const TokenBatch& batch, float scale, double grad_tol,
                                 const std::string& what) {
  const StepGrads cpu = step_param_grads(*make(Device::CPU), batch, scale);
  const StepGrads gpu = step_param_grads(*make(Device::CUDA), batch, scale);
  EXPECT_NEAR(gpu.loss, cpu.loss, 2e-2 * cpu.loss) << what;
  ASSERT_EQ(cpu.grads.size(), gpu.grads.size()) << what;
  for (size_t i = 0; i < cpu.grads.size(); ++i)
    EXPECT_LT(norm_rel_err(gpu.grads[i], cpu.grads[i]), grad_tol) << what << " " << i;
}

}  // namespace qtrain::testing
