#include "kernels/attention.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

struct AttnCase {
  int64_t B, T, Hq, Hkv, D;
};
// Readable, deterministic test names (the default prints raw bytes, padding included).
inline void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << "B" << c.B << "_T" << c.T << "_Hq" << c.Hq << "_Hkv" << c.Hkv << "_D" << c.D;
}

class CudaAttention : public ::testing::TestWithParam<AttnCase> {};

// Norm-relative error with a floor: at T = 1 softmax has one key, so dq and dk
// are exactly zero and only rounding noise (~1e-8) remains on either side.
void expect_grad_close(const Pair& g, const char* what) {
  std::vector<float> a = vec(g.gpu), b = vec(g.cpu);
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  double floor = 1e-6 * double(a.size());  // an rms of 1e-3 per element
  EXPECT_LT(std::sqrt(num / std::max(den, floor)), 2e-2) << what;
}

// GPU (BF16 q/k/v) vs the F32 CPU reference on the same BF16-rounded inputs.
// Each backend's backward gets its own forward's out and lse.
TEST_P(CudaAttention, ForwardBackwardMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  const auto [B, T, Hq, Hkv, D] = GetParam();
  Pair q = randn_pair({B, T, Hq, D}, 1, DType::BF16);
  Pair k = randn_pair({B, T, Hkv, D}, 2, DType::BF16);
  Pair v = randn_pair({B, T, Hkv, D}, 3, DType::BF16);
  Pair out = pair(Tensor::zeros({B, T, Hq, D}, DType::F32), DType::BF16);
  Pair lse = pair(Tensor::zeros({B, Hq, T}, DType::F32), DType::F32);
  attention_forward(out.cpu, lse.cpu, q.cpu, k.cpu, v.cpu);
  attention_forward(out.gpu, lse.gpu, q.gpu, k.gpu, v.gpu);
  EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  EXPECT_LT(max_rel_err(vec(lse.gpu), vec(lse.cpu), 1.0), 1e-2);

  Pair dout = randn_pair({B, T, Hq, D}, 4, DType::BF16);
  for (DType gdt : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(gdt));
    Pair dq = pair(Tensor::zeros(q.cpu.shape(), DType::F32), gdt);
    Pair dk = pair(Tensor::zeros(k.cpu.shape(), DType::F32), gdt);
    Pair dv = pair(Tensor::zeros(v.cpu.shape(), DType::F32), gdt);
    attention_backward(dq.cpu, dk.cpu, dv.cpu, dout.cpu, q.cpu, k.cpu, v.cpu, out.cpu, lse.cpu);
    attention_backward(dq.gpu, dk.gpu, dv.gpu, dout.gpu, q.gpu, k.gpu, v.gpu, out.gpu, lse.gpu);
    expect_grad_close(dq, "dq");
    expect_grad_close(dk, "dk");
    expect_grad_close(dv, "dv");
  }
}

// T = 7 and 129: not multiples of the 64-row tile. GQA ratios 1, 3, 4.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttnCase{1, 7, 2, 2, 64}, AttnCase{2, 129, 6, 2, 64},
                                           AttnCase{1, 200, 8, 2, 128}, AttnCase{2, 64, 3, 3, 128},
                                           AttnCase{1, 257, 9, 3, 64}, AttnCase{1, 1, 4, 1, 64},
                                           // head dims served by the generic fallback kernel
                                           AttnCase{2, 37, 4, 2, 8}, AttnCase{1, 70, 4, 4, 16},
                                           AttnCase{2, 33, 6, 2, 32}, AttnCase{1, 65, 3, 1, 96},
                                           AttnCase{1, 20, 2, 1, 256}));

TEST(CudaAttentionErrors, UnsupportedHeadDimIsAClearError) {
  QT_SKIP_WITHOUT_GPU();
  Tensor q = Tensor::zeros({1, 8, 2, 264}, DType::BF16, Device::CUDA);
  Tensor out = Tensor::zeros({1, 8, 2, 264}, DType::BF16, Device::CUDA);
  Tensor lse = Tensor::zeros({1, 2, 8}, DType::F32, Device::CUDA);
  EXPECT_THROW(attention_forward(out, lse, q, q, q), Error);
}

}  // namespace
}  // namespace qtrain::testing
