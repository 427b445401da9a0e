// The calls of tests/kernels/op_check_cases.h on GPU tensors: the public op
// checks shapes, lengths and positions before it forwards to the CUDA twin,
// so each fails with the same message as on the CPU.
#include <gtest/gtest.h>

#include "kernels/error.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/kernels/op_check_cases.h"

namespace qtrain::testing {
namespace {

TEST(CudaOpChecks, BadShapesFailBeforeTheTwin) {
  QT_SKIP_WITHOUT_GPU();
  for (const OpCheckCase& c : op_check_cases(Device::CUDA)) {
    SCOPED_TRACE(c.name);
    try {
      c.call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
}

TEST(CudaOpChecks, OperandsOnTwoDevicesAreRefused) {
  QT_SKIP_WITHOUT_GPU();
  Tensor x = Tensor::zeros({4, 8}, DType::BF16, Device::CUDA), w = Tensor::zeros({8}, DType::BF16);
  Tensor out = Tensor::zeros({4, 8}, DType::BF16, Device::CUDA);
  try {
    rmsnorm_forward(out, Tensor(), x, w, 1e-5f);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm w: on the CPU, the op's tensors are on the GPU"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qtrain::testing
