#include "kernels/attention.h"
#include "kernels/elementwise.h"

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

// Selects an attention implementation for one test, restoring Auto after.
struct ImplScope {
  explicit ImplScope(AttentionImpl i) { set_attention_impl(i); }
  ~ImplScope() { set_attention_impl(AttentionImpl::Auto); }
};

// GPU (BF16 q/k/v) vs the F32 CPU reference on the same BF16-rounded inputs.
// Each backend's backward gets its own forward's out and lse. `fwd` and `bwd`
// pick the GPU implementation of each direction (they share lse, so a mix
// must agree too: Auto can fall back in one direction only).
void check_against_cpu(const AttnCase& c, AttentionImpl fwd, AttentionImpl bwd, const char* expect_impl) {
  const auto [B, T, Hq, Hkv, D] = c;
  Pair q = randn_pair({B, T, Hq, D}, 1, DType::BF16);
  Pair k = randn_pair({B, T, Hkv, D}, 2, DType::BF16);
  Pair v = randn_pair({B, T, Hkv, D}, 3, DType::BF16);
  Pair out = pair(Tensor::zeros({B, T, Hq, D}, DType::F32), DType::BF16);
  Pair lse = pair(Tensor::zeros({B, Hq, T}, DType::F32), DType::F32);
  attention_forward(out.cpu, lse.cpu, q.cpu, k.cpu, v.cpu);
  {
    ImplScope s(fwd);
    attention_forward(out.gpu, lse.gpu, q.gpu, k.gpu, v.gpu);
    if (expect_impl) EXPECT_STREQ(last_attention_impl(), expect_impl) << "forward";
  }
  EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  EXPECT_LT(max_rel_err(vec(lse.gpu), vec(lse.cpu), 1.0), 1e-2);

  Pair dout = randn_pair({B, T, Hq, D}, 4, DType::BF16);
  for (DType gdt : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(gdt));
    Pair dq = pair(Tensor::zeros(q.cpu.shape(), DType::F32), gdt);
    Pair dk = pair(Tensor::zeros(k.cpu.shape(), DType::F32), gdt);
    Pair dv = pair(Tensor::zeros(v.cpu.shape(), DType::F32), gdt);
    attention_backward(dq.cpu, dk.cpu, dv.cpu, dout.cpu, q.cpu, k.cpu, v.cpu, out.cpu, lse.cpu);
    {
      ImplScope s(bwd);
      attention_backward(dq.gpu, dk.gpu, dv.gpu, dout.gpu, q.gpu, k.gpu, v.gpu, out.gpu, lse.gpu);
      if (expect_impl) EXPECT_STREQ(last_attention_impl(), expect_impl) << "backward";
    }
    expect_grad_close(dq, "dq");
    expect_grad_close(dk, "dk");
    expect_grad_close(dv, "dv");
  }
}

// The default (Auto): cuDNN where it loads and takes the shape, else our kernels.
TEST_P(CudaAttention, ForwardBackwardMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  check_against_cpu(GetParam(), AttentionImpl::Auto, AttentionImpl::Auto, nullptr);
}

// qtrain's own kernels (the fallback), on every shape.
TEST_P(CudaAttention, OwnKernelsMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  check_against_cpu(GetParam(), AttentionImpl::Own, AttentionImpl::Own, "own");
}

// True when cuDNN attention runs on this machine; otherwise the test is skipped
// with the reason (no libcudnn, or built without the frontend headers).
bool cudnn_usable(std::string* why) {
  ImplScope s(AttentionImpl::Cudnn);
  Tensor q = Tensor::zeros({1, 64, 2, 64}, DType::BF16, Device::CUDA);
  Tensor out = Tensor::zeros({1, 64, 2, 64}, DType::BF16, Device::CUDA);
  Tensor lse = Tensor::zeros({1, 2, 64}, DType::F32, Device::CUDA);
  try {
    attention_forward(out, lse, q, q, q);
    return true;
  } catch (const Error& e) {
    *why = e.what();
    return false;
  }
}

// The shapes qtrain trains with (D 64/128, GQA, odd T) must run on cuDNN
// itself when it is there, and agree with the CPU, also mixed with our kernels.
TEST(CudaAttentionCudnn, MatchesCpuAndMixesWithOwnKernels) {
  QT_SKIP_WITHOUT_GPU();
  std::string why;
  if (!cudnn_usable(&why)) GTEST_SKIP() << "skipped: cuDNN attention unavailable: " << why;
  for (AttnCase c : {AttnCase{1, 7, 2, 2, 64}, AttnCase{2, 129, 6, 2, 64}, AttnCase{1, 200, 8, 2, 128},
                     AttnCase{1, 257, 9, 3, 64}, AttnCase{2, 1024, 12, 4, 64}}) {
    SCOPED_TRACE(::testing::PrintToString(c));
    check_against_cpu(c, AttentionImpl::Cudnn, AttentionImpl::Cudnn, "cudnn");
    check_against_cpu(c, AttentionImpl::Cudnn, AttentionImpl::Own, nullptr);
    check_against_cpu(c, AttentionImpl::Own, AttentionImpl::Cudnn, nullptr);
  }
}

// The packed op (GPT-2's fused q|k|v rows): on cuDNN it reads q, k, v and writes dq, dk, dv in
// place through strides; with --attention own (and on the CPU) it splits the columns. Each GPU
// path against the CPU reference, and the packed cuDNN path against the split one on the GPU.
TEST(CudaAttentionCudnn, PackedQkvMatchesSplitAndCpu) {
  QT_SKIP_WITHOUT_GPU();
  std::string why;
  const bool cudnn = cudnn_usable(&why);
  for (AttnCase c : {AttnCase{1, 7, 2, 2, 64}, AttnCase{2, 129, 6, 6, 64}, AttnCase{2, 1024, 16, 16, 64},
                     AttnCase{1, 200, 4, 4, 128}}) {
    SCOPED_TRACE(::testing::PrintToString(c));
    const auto [B, T, H, Hkv, D] = c;
    const int64_t C = H * D;
    Pair qkv = randn_pair({B, T, 3 * C}, 41, DType::BF16);
    Pair dout = randn_pair({B, T, H, D}, 42, DType::BF16);
    Pair out = pair(Tensor::zeros({B, T, H, D}, DType::F32), DType::BF16);
    Pair lse = pair(Tensor::zeros({B, H, T}, DType::F32), DType::F32);
    Pair dqkv = pair(Tensor::zeros({B, T, 3 * C}, DType::F32), DType::BF16);
    attention_forward_qkv(out.cpu, lse.cpu, qkv.cpu);
    attention_backward_qkv(dqkv.cpu, dout.cpu, qkv.cpu, out.cpu, lse.cpu);
    for (AttentionImpl impl : {AttentionImpl::Auto, AttentionImpl::Own}) {
      SCOPED_TRACE(impl == AttentionImpl::Own ? "own" : "auto");
      ImplScope s(impl);
      attention_forward_qkv(out.gpu, lse.gpu, qkv.gpu);
      // With cuDNN, the packed layout itself (not the split fallback, which would say "cudnn").
      EXPECT_STREQ(last_attention_impl(), cudnn && impl == AttentionImpl::Auto ? "cudnn-packed" : "own");
      EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
      EXPECT_LT(max_rel_err(vec(lse.gpu), vec(lse.cpu), 1.0), 1e-2);
      attention_backward_qkv(dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu);
      EXPECT_STREQ(last_attention_impl(), cudnn && impl == AttentionImpl::Auto ? "cudnn-packed" : "own");
      expect_grad_close(dqkv, "dqkv");
      if (impl != AttentionImpl::Auto || !cudnn) continue;
      // The split op on the same GPU: q, k, v copied out, cuDNN on contiguous tensors.
      Tensor rows = qkv.gpu.view({B * T, 3 * C});
      Tensor q = Tensor::empty({B, T, H, D}, DType::BF16, Device::CUDA), k = q.clone(), v = q.clone();
      copy_cols(q.view({B * T, C}), rows, 0);
      copy_cols(k.view({B * T, C}), rows, C);
      copy_cols(v.view({B * T, C}), rows, 2 * C);
      Tensor out2 = Tensor::empty(q.shape(), DType::BF16, Device::CUDA), lse2 = lse.gpu.clone();
      attention_forward(out2, lse2, q, k, v);
      EXPECT_LT(max_rel_err(vec(out.gpu), vec(out2), 1.0), 1e-2);
      Tensor dq = q.clone(), dk = q.clone(), dv = q.clone();
      attention_backward(dq, dk, dv, dout.gpu, q, k, v, out2, lse2);
      Tensor packed = Tensor::zeros({B * T, 3 * C}, DType::BF16, Device::CUDA);
      add_cols(packed, dq.view({B * T, C}), 0);
      add_cols(packed, dk.view({B * T, C}), C);
      add_cols(packed, dv.view({B * T, C}), 2 * C);
      EXPECT_LT(max_rel_err(vec(dqkv.gpu), vec(packed), 1.0), 2e-2);
    }
  }
}

TEST(CudaAttentionCudnn, ParseNamesTheFlag) {
  EXPECT_EQ(parse_attention_impl("cudnn", "--attention"), AttentionImpl::Cudnn);
  EXPECT_EQ(parse_attention_impl("own", "--attention"), AttentionImpl::Own);
  try {
    parse_attention_impl("flash3", "--attention");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--attention"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("flash3"), std::string::npos) << e.what();
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
