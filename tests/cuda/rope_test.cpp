#include "kernels/rope.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaRope, ForwardAndBackwardMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    Shape s;
    float theta;
    DType dt;
  };
  // Long T: angles of thousands of radians, where a fast sin/cos would drift.
  // BF16 with D % 16 == 0 takes the 8-pairs-per-thread kernel; D = 24 the scalar one.
  for (const Case& c : {Case{{2, 129, 3, 64}, 10000.f, DType::BF16}, Case{{1, 2048, 2, 128}, 10000.f, DType::F32},
                        Case{{1, 300, 4, 64}, 500000.f, DType::F32}, Case{{2, 2048, 4, 128}, 10000.f, DType::BF16},
                        Case{{3, 17, 5, 24}, 10000.f, DType::BF16}}) {
    SCOPED_TRACE(shape_str(c.s));
    Pair x = randn_pair(c.s, 1, c.dt);
    rope_forward(x.cpu, c.theta);
    rope_forward(x.gpu, c.theta);
    EXPECT_CLOSE(x.gpu, x.cpu, c.dt == DType::BF16 ? kBf16Tol : 1e-5);
    Pair dx = randn_pair(c.s, 2, c.dt);
    rope_backward(dx.cpu, c.theta);
    rope_backward(dx.gpu, c.theta);
    EXPECT_CLOSE(dx.gpu, dx.cpu, c.dt == DType::BF16 ? kBf16Tol : 1e-5);
  }
}

}  // namespace
}  // namespace qtrain::testing
