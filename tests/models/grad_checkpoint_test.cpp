// --grad-checkpoint recomputes each layer's activations in backward (same
// dropout masks); on the CPU reference that must change nothing at all.
#include <gtest/gtest.h>

#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

class GradCheckpoint : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(GradCheckpoint, SameLossAndGradientsOnCpu) {
  auto [model, method] = GetParam();
  LossAndGrads plain = loss_and_grads(model, method, Device::CPU, false);
  LossAndGrads ckpt = loss_and_grads(model, method, Device::CPU, true);
  ASSERT_EQ(plain.grads.size(), ckpt.grads.size());
  ASSERT_GT(plain.grads.size(), 0u);
  EXPECT_EQ(plain.loss, ckpt.loss);
  EXPECT_LT(norm_rel_err(ckpt.grads, plain.grads), 1e-6);
  double norm = 0;
  for (float g : plain.grads) norm += double(g) * g;
  EXPECT_GT(norm, 0.0);  // something was actually compared
}

INSTANTIATE_TEST_SUITE_P(Models, GradCheckpoint,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-gpt2"),
                                            ::testing::Values("lora", "full", "qblora")),
                         ModelMethodName());

}  // namespace
}  // namespace qtrain::testing
