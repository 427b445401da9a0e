// The decode-path variants of the kernels (position offsets, attention against
// a KV cache) against their full-sequence forms on the CPU reference: running
// positions pos0.. of a sequence alone gives exactly those rows of the whole.
#include <gtest/gtest.h>

#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/rope.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

TEST(DecodeKernels, RopeOffsetEqualsTheLongerSequencesRows) {
  const int64_t T = 9, H = 3, D = 16, pos0 = 6;
  Tensor full = randn({1, T, H, D}, 1);
  Tensor tail = full.flat(pos0 * H * D, T * H * D).clone().view({1, T - pos0, H, D});
  rope_forward(full, 10000.f);
  rope_forward(tail, 10000.f, int(pos0));
  std::vector<float> a = tail.to_vector(), b = full.to_vector();
  b.erase(b.begin(), b.begin() + pos0 * H * D);
  EXPECT_LT(max_rel_err(a, b, 1e-3), 1e-6);
  rope_backward(tail, 10000.f, int(pos0));  // the inverse rotation at the same positions
  Tensor orig = randn({1, T, H, D}, 1);
  std::vector<float> o = orig.to_vector();
  o.erase(o.begin(), o.begin() + pos0 * H * D);
  EXPECT_LT(max_rel_err(tail.to_vector(), o, 1e-2), 1e-5);
}

TEST(DecodeKernels, EmbeddingOffsetReadsLaterPositions) {
  const int64_t V = 7, C = 4, maxT = 10;
  Tensor wte = randn({V, C}, 2), wpe = randn({maxT, C}, 3);
  std::vector<int32_t> idv{3, 5};
  Tensor ids = Tensor::wrap(idv.data(), {2}, DType::I32);
  Tensor out = Tensor::empty({2, C}, DType::F32);
  embedding_forward(out, ids, wte, wpe, 1, 8);  // B = 2 rows of one token at position 8
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < C; ++c)
      EXPECT_EQ(out.to_vector()[size_t(n * C + c)], wte.to_vector()[size_t(idv[size_t(n)] * C + c)] +
                                                        wpe.to_vector()[size_t(8 * C + c)]);
  EXPECT_THROW(embedding_forward(out, ids, wte, wpe, 1, 10), Error);  // past the position table
}

// Queries pos0..T-1 against a cache holding all T keys give the full causal
// attention's rows pos0..T-1 (GQA: 4 query heads on 2 kv heads; cache longer than T).
TEST(DecodeKernels, CachedAttentionEqualsCausalAttentionRows) {
  const int64_t B = 2, T = 11, Hq = 4, Hkv = 2, D = 8, cap = 16;
  for (int64_t pos0 : {0, 5, 10}) {
    Tensor q = randn({B, T, Hq, D}, 4), k = randn({B, T, Hkv, D}, 5), v = randn({B, T, Hkv, D}, 6);
    Tensor out = Tensor::empty({B, T, Hq, D}, DType::F32), lse = Tensor::empty({B, Hq, T}, DType::F32);
    attention_forward(out, lse, q, k, v);
    Tensor kc = Tensor::zeros({B, cap, Hkv, D}, DType::F32), vc = Tensor::zeros({B, cap, Hkv, D}, DType::F32);
    const int64_t tq = T - pos0, qrow = Hq * D, kvrow = Hkv * D;
    Tensor qn = Tensor::empty({B, tq, Hq, D}, DType::F32), on = Tensor::empty({B, tq, Hq, D}, DType::F32);
    for (int64_t b = 0; b < B; ++b) {
      kc.flat(b * cap * kvrow, (b * cap + T) * kvrow).copy_from(k.flat(b * T * kvrow, (b + 1) * T * kvrow));
      vc.flat(b * cap * kvrow, (b * cap + T) * kvrow).copy_from(v.flat(b * T * kvrow, (b + 1) * T * kvrow));
      qn.flat(b * tq * qrow, (b + 1) * tq * qrow).copy_from(q.flat((b * T + pos0) * qrow, (b + 1) * T * qrow));
    }
    attention_cached(on, qn, kc, vc, int(pos0));
    std::vector<float> want, got = on.to_vector(), all = out.to_vector();
    for (int64_t b = 0; b < B; ++b)
      want.insert(want.end(), all.begin() + (b * T + pos0) * qrow, all.begin() + (b + 1) * T * qrow);
    EXPECT_LT(max_rel_err(got, want, 1e-2), 1e-4) << "pos0 " << pos0;
  }
  Tensor q = randn({1, 2, Hq, D}, 7), kc = randn({1, 4, Hkv, D}, 8);
  Tensor out = Tensor::empty({1, 2, Hq, D}, DType::F32);
  EXPECT_THROW(attention_cached(out, q, kc, kc, 3), Error);  // positions 3..4 do not fit 4 cache rows
}

TEST(DecodeKernels, KvCacheWriteFillsPositionsOfEveryRow) {
  const int64_t B = 2, T = 3, Tc = 7, H = 2, D = 4, pos0 = 4;
  Tensor cache = Tensor::zeros({B, Tc, H, D}, DType::F32);
  Tensor src = randn({B, T, H, D}, 5);
  kv_cache_write(cache, src, int(pos0));
  const float *c = cache.f32(), *s = src.f32();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tc; ++t)
      for (int64_t e = 0; e < H * D; ++e) {
        const float want = t >= pos0 && t < pos0 + T ? s[(b * T + t - pos0) * H * D + e] : 0.f;
        ASSERT_EQ(c[(b * Tc + t) * H * D + e], want) << "b " << b << " t " << t;
      }
  EXPECT_THROW(kv_cache_write(cache, src, 5), Error);  // positions 5..7 do not fit 7 rows
}

// A device position (a captured CUDA graph's) has no meaning on the CPU.
TEST(DecodeKernels, CpuOpsRefuseADevicePosition) {
  int32_t fake = 0;
  const SeqPos dev(1, &fake, 4);
  Tensor q = randn({1, 1, 2, 4}, 1), kc = randn({1, 4, 2, 4}, 2), out = Tensor::zeros({1, 1, 2, 4}, DType::F32);
  EXPECT_THROW(attention_cached(out, q, kc, kc, dev), Error);
  EXPECT_THROW(kv_cache_write(kc, q, dev), Error);
  EXPECT_THROW(rope_forward(q, 10000.f, dev), Error);
}

}  // namespace
}  // namespace qtrain::testing
