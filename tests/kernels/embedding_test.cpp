#include "kernels/embedding.h"

#include "tests/kernels/grad_check.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {
Tensor ids_tensor(const std::vector<int32_t>& ids) {
  Tensor t = Tensor::empty({int64_t(ids.size())}, DType::I32);
  std::copy(ids.begin(), ids.end(), t.i32());
  return t;
}
}  // namespace

TEST(Embedding, ForwardLooksUpTokenPlusPosition) {
  const int T = 3, C = 5;
  Tensor wte = randn({10, C}, 1), wpe = randn({4, C}, 2);
  Tensor ids = ids_tensor({3, 0, 9, 3, 3, 7});  // B=2, T=3
  Tensor out = Tensor::empty({6, C}, DType::F32);
  embedding_forward(out, ids, wte, wpe, T);
  auto o = out.to_vector(), te = wte.to_vector(), pe = wpe.to_vector();
  for (int64_t n = 0; n < 6; ++n)
    for (int64_t c = 0; c < C; ++c)
      EXPECT_EQ(o[size_t(n * C + c)], te[size_t(ids.i32()[n] * C + c)] + pe[size_t((n % T) * C + c)]);
  embedding_forward(out, ids, wte, Tensor(), T);  // LLaMA: no position table
  EXPECT_EQ(out.to_vector()[C * 2 + 1], te[9 * C + 1]);
  EXPECT_THROW(embedding_forward(out, ids_tensor({0, 1, 2, 3, 4, 10}), wte, wpe, T), Error);
}

TEST(Embedding, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int T = 4, C = 40;  // C > one 32-column block
  Tensor wte = randn({6, C}, 3), wpe = randn({T, C}, 4), r = randn({8, C}, 5);
  Tensor ids = ids_tensor({1, 1, 5, 0, 5, 1, 2, 1});  // repeated ids must sum
  Tensor out = Tensor::empty({8, C}, DType::F32);
  auto loss = [&] {
    embedding_forward(out, ids, wte, wpe, T);
    return weighted_sum(out, r);
  };
  Tensor dwte = Tensor::zeros({6, C}, DType::F32), dwpe = Tensor::zeros({T, C}, DType::F32);
  embedding_backward(dwte, dwpe, r, ids, T);
  EXPECT_GRAD_MATCHES(dwte, numeric_grad(wte, loss), "embedding dwte");
  EXPECT_GRAD_MATCHES(dwpe, numeric_grad(wpe, loss), "embedding dwpe");
  // Row 3 (unused id) stays zero; a second call with wpe frozen doubles dwte only.
  for (int64_t c = 0; c < C; ++c) EXPECT_EQ(dwte.f32()[3 * C + c], 0.f);
  auto te1 = dwte.to_vector(), pe1 = dwpe.to_vector();
  embedding_backward(dwte, Tensor(), r, ids, T);
  std::vector<float> twice;
  for (float v : te1) twice.push_back(2 * v);
  EXPECT_LT(max_rel_err(dwte.to_vector(), twice, 1e-3), 1e-5);
  EXPECT_EQ(dwpe.to_vector(), pe1);
}
