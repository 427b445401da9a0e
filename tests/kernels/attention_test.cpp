#include "kernels/attention.h"

#include "tests/kernels/grad_check.h"
#include "tests/kernels/kernel_fixture.h"

using namespace qtrain;
using namespace qtrain::testing;

TEST(Attention, ForwardAndGradsMatchPyTorch) {
  KernelFixture f("attention");
  // GQA ratio 1 and 3 at T=7; ratio 2 at T=150 (several 64-row blocks).
  for (std::string name : {"g1", "g3", "long"}) {
    const std::string p = name + "_";
    Tensor q = f.tensor(p + "q"), k = f.tensor(p + "k"), v = f.tensor(p + "v");
    Tensor out = Tensor::empty(q.shape(), DType::F32);
    Tensor lse = Tensor::empty(f.shape(p + "lse"), DType::F32);
    attention_forward(out, lse, q, k, v);
    EXPECT_MATCHES_REF(out.to_vector(), f.vec(p + "out"), p + "out");
    EXPECT_MATCHES_REF(lse.to_vector(), f.vec(p + "lse"), p + "lse");
    Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
           dv = Tensor::empty(v.shape(), DType::F32);
    attention_backward(dq, dk, dv, f.tensor(p + "dout"), q, k, v, out, lse);
    EXPECT_MATCHES_REF(dq.to_vector(), f.vec(p + "dq"), p + "dq");
    EXPECT_MATCHES_REF(dk.to_vector(), f.vec(p + "dk"), p + "dk");
    EXPECT_MATCHES_REF(dv.to_vector(), f.vec(p + "dv"), p + "dv");
  }
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  const int64_t B = 2, T = 5, Hq = 4, Hkv = 2, D = 4;
  Tensor q = randn({B, T, Hq, D}, 1), k = randn({B, T, Hkv, D}, 2), v = randn({B, T, Hkv, D}, 3);
  Tensor r = randn({B, T, Hq, D}, 4);
  Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({B, Hq, T}, DType::F32);
  auto loss = [&] {
    attention_forward(out, lse, q, k, v);
    return weighted_sum(out, r);
  };
  loss();
  Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
         dv = Tensor::empty(v.shape(), DType::F32);
  attention_backward(dq, dk, dv, r, q, k, v, out, lse);
  EXPECT_GRAD_MATCHES(dq, numeric_grad(q, loss), "attention dq");
  EXPECT_GRAD_MATCHES(dk, numeric_grad(k, loss), "attention dk");
  EXPECT_GRAD_MATCHES(dv, numeric_grad(v, loss), "attention dv");
}

TEST(Attention, IsCausal) {
  // Changing the last key/value must not change any output row but the last.
  const int64_t B = 1, T = 6, H = 2, D = 8;
  Tensor q = randn({B, T, H, D}, 5), k = randn({B, T, H, D}, 6), v = randn({B, T, H, D}, 7);
  Tensor out1 = Tensor::empty(q.shape(), DType::F32), out2 = Tensor::empty(q.shape(), DType::F32);
  Tensor lse = Tensor::empty({B, H, T}, DType::F32);
  attention_forward(out1, lse, q, k, v);
  for (int64_t i = (T - 1) * H * D; i < T * H * D; ++i) k.f32()[i] += 1.f, v.f32()[i] -= 1.f;
  attention_forward(out2, lse, q, k, v);
  auto a = out1.to_vector(), b = out2.to_vector();
  for (int64_t i = 0; i < (T - 1) * H * D; ++i) EXPECT_EQ(a[size_t(i)], b[size_t(i)]);
  EXPECT_NE(a.back(), b.back());
}
