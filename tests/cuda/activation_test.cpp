#include "kernels/activation.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaActivation, GeluForwardBackward) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32}) {
    Shape s{129, 61};
    Pair x = randn_pair(s, 1, dt, 3.f);
    Pair out = pair(Tensor::zeros(s, DType::F32), dt);
    gelu_forward(out.cpu, x.cpu);
    gelu_forward(out.gpu, x.gpu);
    EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
    Pair dout = randn_pair(s, 2, dt);
    Pair dx = pair(Tensor::zeros(s, DType::F32), dt);
    gelu_backward(dx.cpu, dout.cpu, x.cpu);
    gelu_backward(dx.gpu, dout.gpu, x.gpu);
    EXPECT_CLOSE(dx.gpu, dx.cpu, tol_for(dt));
  }
}

TEST(CudaActivation, SwigluForwardBackward) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32}) {
    Shape s{67, 1536};
    Pair gate = randn_pair(s, 3, dt, 3.f), up = randn_pair(s, 4, dt);
    Pair out = pair(Tensor::zeros(s, DType::F32), dt);
    swiglu_forward(out.cpu, gate.cpu, up.cpu);
    swiglu_forward(out.gpu, gate.gpu, up.gpu);
    EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
    Pair dout = randn_pair(s, 5, dt);
    Pair dg = pair(Tensor::zeros(s, DType::F32), dt), du = pair(Tensor::zeros(s, DType::F32), dt);
    swiglu_backward(dg.cpu, du.cpu, dout.cpu, gate.cpu, up.cpu);
    swiglu_backward(dg.gpu, du.gpu, dout.gpu, gate.gpu, up.gpu);
    EXPECT_CLOSE(dg.gpu, dg.cpu, tol_for(dt));
    EXPECT_CLOSE(du.gpu, du.cpu, tol_for(dt));
  }
}

}  // namespace
}  // namespace qtrain::testing
