#include "kernels/matmul.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

struct GemmCase {
  DType a, b, c;
};
// Readable, deterministic test names (the default prints raw bytes, padding included).
inline void PrintTo(const GemmCase& c, std::ostream* os) {
  *os << dtype_name(c.a) << "_" << dtype_name(c.b) << "_" << dtype_name(c.c);
}

class CudaGemm : public ::testing::TestWithParam<GemmCase> {};

TEST_P(CudaGemm, MatchesCpuForEveryTransposeAndBeta) {
  QT_SKIP_WITHOUT_GPU();
  const GemmCase gc = GetParam();
  const int64_t M = 37, N = 29, K = 45;  // odd on purpose: no tile or vector width divides them
  uint64_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f}) {
        SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb << " beta=" << beta);
        Pair a = randn_pair(ta ? Shape{K, M} : Shape{M, K}, seed++, gc.a);
        Pair b = randn_pair(tb ? Shape{N, K} : Shape{K, N}, seed++, gc.b);
        Pair c = randn_pair({M, N}, seed++, gc.c);
        gemm(c.cpu, a.cpu, b.cpu, ta, tb, 0.5f, beta);
        gemm(c.gpu, a.gpu, b.gpu, ta, tb, 0.5f, beta);
        // Mixed operands round the F32 side to BF16 on the GPU.
        bool any_bf16 = gc.a == DType::BF16 || gc.b == DType::BF16 || gc.c == DType::BF16;
        EXPECT_CLOSE(c.gpu, c.cpu, any_bf16 ? kBf16Tol : 1e-5);
      }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaGemm,
                         ::testing::Values(GemmCase{DType::BF16, DType::BF16, DType::BF16},
                                           GemmCase{DType::BF16, DType::BF16, DType::F32},
                                           GemmCase{DType::F32, DType::F32, DType::F32},
                                           GemmCase{DType::BF16, DType::F32, DType::F32},
                                           GemmCase{DType::F32, DType::BF16, DType::BF16},
                                           GemmCase{DType::F32, DType::F32, DType::BF16}));

TEST(CudaGemm, ThreeDimensionalOperandsFlatten) {
  QT_SKIP_WITHOUT_GPU();
  Pair x = randn_pair({2, 5, 64}, 11, DType::BF16);
  Pair w = randn_pair({64, 48}, 12, DType::BF16);
  Pair y = randn_pair({2, 5, 48}, 13, DType::F32);
  gemm(y.cpu, x.cpu, w.cpu, false, false);
  gemm(y.gpu, x.gpu, w.gpu, false, false);
  EXPECT_CLOSE(y.gpu, y.cpu, 1e-4);  // BF16 inputs, F32 out: only accumulation order differs
}

// gemm_bias: the bias in cuBLASLt's epilogue. Every dtype mix a Linear meets (BF16 frozen base, F32
// master of a full fine-tune; y BF16 or F32), a bias of y's dtype used in place (16-byte aligned) or
// not (another dtype, or a view at an odd offset of a flat parameter buffer: rounded into scratch).
TEST(CudaGemm, BiasInTheEpilogueMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  uint64_t seed = 31;
  for (int64_t N : {33, 264, 1024})
    for (DType wt : {DType::BF16, DType::F32})
      for (DType yt : {DType::BF16, DType::F32})
        for (DType bt : {DType::BF16, DType::F32})
          for (bool offset : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "N " << N << " w " << dtype_name(wt) << " y " << dtype_name(yt)
                                              << " bias " << dtype_name(bt) << (offset ? " at offset 1" : ""));
            Pair x = randn_pair({77, 64}, seed++, DType::BF16);
            Pair w = randn_pair({N, 64}, seed++, wt);
            Pair flat = randn_pair({N + 1}, seed++, bt, 4.f);
            Tensor bc = flat.cpu.flat(offset ? 1 : 0, offset ? N + 1 : N), bg = flat.gpu.flat(offset ? 1 : 0, offset ? N + 1 : N);
            Pair y = randn_pair({77, N}, seed++, yt);  // overwritten
            gemm_bias(y.cpu, x.cpu, w.cpu, bc);
            gemm_bias(y.gpu, x.gpu, w.gpu, bg);
            EXPECT_CLOSE(y.gpu, y.cpu, kBf16Tol);
          }
}

TEST(CudaBias, AddAndBackward) {
  QT_SKIP_WITHOUT_GPU();
  // 33: generic kernels; 1024 and 264: the 8-wide BF16 kernels (several column blocks, a partial one)
  for (int64_t C : {33, 1024, 264})
    for (DType dt : {DType::BF16, DType::F32}) {
      SCOPED_TRACE("C " + std::to_string(C));
      Pair y = randn_pair({77, C}, 21, dt);
      Pair bias = randn_pair({C}, 22, DType::F32);
      add_bias(y.cpu, bias.cpu);
      add_bias(y.gpu, bias.gpu);
      EXPECT_CLOSE(y.gpu, y.cpu, tol_for(dt));
      Pair dy = randn_pair({1000, C}, 23, dt);
      Pair db = randn_pair({C}, 24, DType::F32);  // accumulates into existing values
      bias_backward(db.cpu, dy.cpu);
      bias_backward(db.gpu, dy.gpu);
      EXPECT_CLOSE(db.gpu, db.cpu, 1e-5);
    }
}

}  // namespace
}  // namespace qtrain::testing
