#include "kernels/loss.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

Tensor make_targets(int64_t N, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor t = Tensor::empty({N}, DType::I32);
  for (int64_t i = 0; i < N; ++i) t.i32()[i] = (i % 5 == 3) ? kIgnoreIndex : int32_t(rng() % uint64_t(V));
  return t;
}

void check_loss(int64_t N, int64_t C, int64_t V, DType wdt, bool with_dw) {
  SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " V=" << V << " w=" << dtype_name(wdt));
  Pair x = randn_pair({N, C}, 1, DType::BF16);
  Pair w = randn_pair({V, C}, 2, wdt, 0.2f);
  Tensor tc = make_targets(N, V, 3);
  Tensor tg = tc.to(Device::CUDA);
  Pair dx = pair(Tensor::zeros({N, C}, DType::F32), DType::BF16);
  Pair dw = randn_pair({V, C}, 4, DType::F32, 1e-3f);  // accumulated into
  const float scale = 1.f / float(N);
  double lc = lm_head_cross_entropy(dx.cpu, with_dw ? dw.cpu : Tensor(), x.cpu, w.cpu, tc, scale);
  double lg = lm_head_cross_entropy(dx.gpu, with_dw ? dw.gpu : Tensor(), x.gpu, w.gpu, tg, scale);
  // F32 logits from the same BF16 inputs: only summation order (and, for an
  // F32 w, its rounding to BF16 on the GPU) differs.
  EXPECT_NEAR(lg, lc, std::abs(lc) * (wdt == DType::F32 ? 5e-3 : 1e-4));
  EXPECT_CLOSE(dx.gpu, dx.cpu, kBf16Tol);
  if (with_dw) EXPECT_CLOSE(dw.gpu, dw.cpu, kBf16Tol);
}

TEST(CudaLmHeadLoss, GptVocabWithIgnoredRows) {
  QT_SKIP_WITHOUT_GPU();
  check_loss(37, 64, 50257, DType::BF16, true);
  check_loss(37, 64, 50257, DType::BF16, false);
  check_loss(19, 96, 1001, DType::F32, true);  // trainable F32 head (full fine-tune)
}

// Vocabularies around the row kernel's four-value loads: a tail of 1-3 values, and under 8,
// where the tail's gradients overwrite the tail's own logits (read before a barrier).
TEST(CudaLmHeadLoss, VocabTails) {
  QT_SKIP_WITHOUT_GPU();
  for (int64_t V : {2, 3, 5, 7, 8, 9, 4099, 4102}) check_loss(23, 32, V, DType::BF16, true);
}

// More rows than one logits chunk holds at V = 50257 (1280 rows), so the
// chunk loop and its row offsets are exercised.
TEST(CudaLmHeadLoss, SeveralChunks) {
  QT_SKIP_WITHOUT_GPU();
  check_loss(1500, 64, 50257, DType::BF16, true);
}

}  // namespace
}  // namespace qtrain::testing
