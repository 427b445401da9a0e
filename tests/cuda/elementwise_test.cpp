#include "kernels/elementwise.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaElementwise, AxpyScaleAddConvert) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32}) {
    Shape s{1001, 3};
    Pair y = randn_pair(s, 1, dt), x = randn_pair(s, 2, dt);
    add_inplace(y.cpu, x.cpu);
    add_inplace(y.gpu, x.gpu);
    axpy(y.cpu, -0.25f, x.cpu);
    axpy(y.gpu, -0.25f, x.gpu);
    scale_inplace(y.cpu, 3.f);
    scale_inplace(y.gpu, 3.f);
    EXPECT_CLOSE(y.gpu, y.cpu, tol_for(dt));
  }
  // F32 -> BF16 -> F32 on the GPU equals the host's round-to-nearest-even.
  Tensor h = randn({4097}, 3);
  Tensor g16 = Tensor::empty({4097}, DType::BF16, Device::CUDA);
  convert(g16, h.to(Device::CUDA));
  Tensor g32 = Tensor::empty({4097}, DType::F32, Device::CUDA);
  convert(g32, g16);
  EXPECT_EQ(vec(g32), vec(round_to(h, DType::BF16)));
}

TEST(CudaElementwise, SumSquaresInDouble) {
  QT_SKIP_WITHOUT_GPU();
  Tensor h = randn({1 << 20}, 4);
  double ref = sum_squares(h);
  EXPECT_NEAR(sum_squares(h.to(Device::CUDA)), ref, ref * 1e-5);
  Pair b = randn_pair({12345}, 5, DType::BF16);
  double refb = sum_squares(b.cpu);
  EXPECT_NEAR(sum_squares(b.gpu), refb, refb * 1e-5);
  EXPECT_EQ(sum_squares(Tensor::zeros({0}, DType::F32, Device::CUDA)), 0.0);
}

TEST(CudaElementwise, CopyAndAddColumns) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32}) {
    Pair qkv = randn_pair({37, 3 * 48}, 6, dt);
    Pair k = pair(Tensor::zeros({37, 48}, DType::F32), dt);
    copy_cols(k.cpu, qkv.cpu, 48);
    copy_cols(k.gpu, qkv.gpu, 48);
    EXPECT_CLOSE(k.gpu, k.cpu, 0.0 + 1e-7);
    Pair dqkv = randn_pair({37, 3 * 48}, 7, dt), dv = randn_pair({37, 48}, 8, dt);
    add_cols(dqkv.cpu, dv.cpu, 96);
    add_cols(dqkv.gpu, dv.gpu, 96);
    EXPECT_CLOSE(dqkv.gpu, dqkv.cpu, tol_for(dt));
  }
}

TEST(CudaElementwise, DropoutDrawsTheCpuMask) {
  QT_SKIP_WITHOUT_GPU();
  for (float p : {0.f, 0.1f, 0.5f}) {
    SCOPED_TRACE(p);
    const int64_t n = 100003;
    Pair x = randn_pair({n}, 9, DType::F32);
    Tensor mc = Tensor::zeros({n}, DType::U8), mg = Tensor::zeros({n}, DType::U8, Device::CUDA);
    Pair out = pair(Tensor::zeros({n}, DType::F32), DType::F32);
    dropout_forward(out.cpu, mc, x.cpu, p, 1234, 777);
    dropout_forward(out.gpu, mg, x.gpu, p, 1234, 777);
    Tensor mg_host = mg.to(Device::CPU);
    EXPECT_EQ(0, std::memcmp(mg_host.raw(), mc.raw(), size_t(n))) << "masks differ";
    EXPECT_CLOSE(out.gpu, out.cpu, 1e-6);
    Pair dout = randn_pair({n}, 10, DType::F32);
    Pair dx = pair(Tensor::zeros({n}, DType::F32), DType::F32);
    dropout_backward(dx.cpu, dout.cpu, mc, p);
    dropout_backward(dx.gpu, dout.gpu, mg, p);
    EXPECT_CLOSE(dx.gpu, dx.cpu, 1e-6);
  }
}

}  // namespace
}  // namespace qtrain::testing
