// The argument checks that run before the device dispatch (kernels/op_checks.h):
// each bad call in op_check_cases() fails on CPU tensors with its shape,
// length, range or position message. tests/cuda/op_checks_test.cpp runs the
// same calls on GPU tensors.
#include <gtest/gtest.h>

#include "kernels/error.h"
#include "kernels/norm.h"
#include "tests/kernels/op_check_cases.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(OpChecks, BadShapesFailBeforeTheBackendOnCpuTensors) {
  for (const OpCheckCase& c : op_check_cases(Device::CPU)) {
    SCOPED_TRACE(c.name);
    try {
      c.call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
      // The operands are BF16: reaching the reference's F32 check would mean
      // the shared check did not run first.
      EXPECT_EQ(std::string(e.what()).find("CPU kernels take F32"), std::string::npos) << e.what();
    }
  }
}

// Right shapes pass the shared checks, and only then does the CPU path refuse
// what is its own: BF16 operands (the CUDA twin takes them).
TEST(OpChecks, TheCpuPathKeepsOnlyItsDtypeCheck) {
  Tensor x = Tensor::zeros({4, 8}, DType::BF16), w = Tensor::zeros({8}, DType::BF16);
  Tensor out = Tensor::zeros({4, 8}, DType::BF16), rstd = Tensor::zeros({4}, DType::F32);
  try {
    rmsnorm_forward(out, rstd, x, w, 1e-5f);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU kernels take F32, got BF16"), std::string::npos) << e.what();
  }
}

// The forward norms may leave out their row statistics on either backend.
TEST(OpChecks, NormForwardWithoutStatistics) {
  Tensor x = Tensor::from_vector({1.f, -2.f, 3.f, 4.f}, {2, 2}), w = Tensor::from_vector({1.f, 2.f}, {2});
  Tensor with = Tensor::zeros({2, 2}, DType::F32), without = Tensor::zeros({2, 2}, DType::F32);
  rmsnorm_forward(with, Tensor::zeros({2}, DType::F32), x, w, 1e-5f);
  rmsnorm_forward(without, Tensor(), x, w, 1e-5f);
  EXPECT_EQ(with.to_vector(), without.to_vector());
  Tensor b = Tensor::from_vector({0.5f, -0.5f}, {2});
  layernorm_forward(with, Tensor::zeros({2}, DType::F32), Tensor::zeros({2}, DType::F32), x, w, b, 1e-5f);
  layernorm_forward(without, Tensor(), Tensor(), x, w, b, 1e-5f);
  EXPECT_EQ(with.to_vector(), without.to_vector());
  EXPECT_NE(with.to_vector()[0], 0.f);
}
