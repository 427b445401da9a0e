// The GPU decode attention (BF16 caches) against the CPU reference on the same
// BF16-rounded values: one query row (decode) and a few (speculative /
// chunked prefill), GQA, head dims 8..128, caches longer than what is used.
#include "kernels/attention.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaAttentionCached, MatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t B, Tq, Hq, Hkv, D, cap;
    int pos0;
  };
  for (Case c : {Case{1, 1, 4, 2, 16, 40, 0}, Case{1, 1, 9, 3, 64, 300, 257}, Case{2, 1, 32, 8, 128, 130, 128},
                 Case{2, 3, 12, 12, 64, 64, 20}, Case{1, 5, 4, 1, 8, 8, 3}}) {
    Pair q = randn_pair({c.B, c.Tq, c.Hq, c.D}, 1, DType::BF16);
    Pair kc = randn_pair({c.B, c.cap, c.Hkv, c.D}, 2, DType::BF16);
    Pair vc = randn_pair({c.B, c.cap, c.Hkv, c.D}, 3, DType::BF16);
    Pair out = pair(Tensor::zeros({c.B, c.Tq, c.Hq, c.D}, DType::F32), DType::BF16);
    attention_cached(out.cpu, q.cpu, kc.cpu, vc.cpu, c.pos0);
    attention_cached(out.gpu, q.gpu, kc.gpu, vc.gpu, c.pos0);
    SCOPED_TRACE("D " + std::to_string(c.D) + " pos0 " + std::to_string(c.pos0));
    EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  }
}

}  // namespace
}  // namespace qtrain::testing
