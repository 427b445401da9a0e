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

// The 16-byte BF16 path (aligned) and the scalar path (a view one element in,
// so not 16-byte aligned) must give the same bits: same F32 math per element.
TEST(CudaActivation, VectorAndScalarPathsAgreeBitForBit) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t n = 8 * 1000 + 5;
  auto gpu = [&](uint64_t seed, float scale) { return randn({n + 1}, seed, scale).to(Device::CUDA, DType::BF16); };
  Tensor dout = gpu(1, 1.f), gate = gpu(2, 3.f), up = gpu(3, 1.f);
  auto run = [&](int64_t off) {
    Tensor dg = Tensor::zeros({n + 1}, DType::BF16, Device::CUDA), du = Tensor::zeros({n + 1}, DType::BF16, Device::CUDA);
    swiglu_backward(dg.flat(off, off + n), du.flat(off, off + n), dout.flat(off, off + n), gate.flat(off, off + n),
                    up.flat(off, off + n));
    return std::make_pair(dg.flat(off, off + n).to_vector(), du.flat(off, off + n).to_vector());
  };
  // Same values at both offsets: shift the inputs so element i is the same.
  Tensor d2 = Tensor::zeros({n + 1}, DType::BF16, Device::CUDA), g2 = d2.clone(), u2 = d2.clone();
  d2.flat(1, n + 1).copy_from(dout.flat(0, n));
  g2.flat(1, n + 1).copy_from(gate.flat(0, n));
  u2.flat(1, n + 1).copy_from(up.flat(0, n));
  auto aligned = run(0);
  dout = d2, gate = g2, up = u2;
  auto shifted = run(1);
  EXPECT_EQ(aligned.first, shifted.first);
  EXPECT_EQ(aligned.second, shifted.second);
}

}  // namespace
}  // namespace qtrain::testing
