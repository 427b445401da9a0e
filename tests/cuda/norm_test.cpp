#include "kernels/norm.h"
#include "kernels/elementwise.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

struct NormCase {
  int64_t N, C;
  DType dt;
};
// Readable, deterministic test names (the default prints raw bytes, padding included).
inline void PrintTo(const NormCase& c, std::ostream* os) {
  *os << "N" << c.N << "_C" << c.C << "_" << dtype_name(c.dt);
}

class CudaNorm : public ::testing::TestWithParam<NormCase> {};

TEST_P(CudaNorm, LayerNormForwardBackward) {
  QT_SKIP_WITHOUT_GPU();
  const auto [N, C, dt] = GetParam();
  Pair x = randn_pair({N, C}, 1, dt, 2.f);
  Pair w = randn_pair({C}, 2, DType::BF16);  // frozen base weight (BF16) ...
  Pair b = randn_pair({C}, 3, DType::F32);   // ... and an F32 one
  Pair out = pair(Tensor::zeros({N, C}, DType::F32), dt);
  Tensor mean_c = Tensor::zeros({N}, DType::F32), rstd_c = Tensor::zeros({N}, DType::F32);
  Tensor mean_g = mean_c.to(Device::CUDA), rstd_g = rstd_c.to(Device::CUDA);
  layernorm_forward(out.cpu, mean_c, rstd_c, x.cpu, w.cpu, b.cpu, 1e-5f);
  layernorm_forward(out.gpu, mean_g, rstd_g, x.gpu, w.gpu, b.gpu, 1e-5f);
  EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
  EXPECT_CLOSE(mean_g, mean_c, 1e-5);
  EXPECT_CLOSE(rstd_g, rstd_c, 1e-5);

  Pair dout = randn_pair({N, C}, 4, dt);
  Pair dx = pair(Tensor::zeros({N, C}, DType::F32), dt);
  Pair dw = randn_pair({C}, 5, DType::F32), db = randn_pair({C}, 6, DType::F32);  // accumulated into
  layernorm_backward(dx.cpu, dw.cpu, db.cpu, dout.cpu, x.cpu, w.cpu, mean_c, rstd_c);
  layernorm_backward(dx.gpu, dw.gpu, db.gpu, dout.gpu, x.gpu, w.gpu, mean_g, rstd_g);
  EXPECT_CLOSE(dx.gpu, dx.cpu, tol_for(dt));
  EXPECT_CLOSE(dw.gpu, dw.cpu, 1e-4);
  EXPECT_CLOSE(db.gpu, db.cpu, 1e-4);

  // Frozen norm: no weight gradients, dx unchanged.
  Pair dx2 = pair(Tensor::zeros({N, C}, DType::F32), dt);
  layernorm_backward(dx2.gpu, Tensor(), Tensor(), dout.gpu, x.gpu, w.gpu, mean_g, rstd_g);
  EXPECT_CLOSE(dx2.gpu, dx.cpu, tol_for(dt));

  // dx += the gradient (the residual stream's), with the weight gradients too.
  Pair acc = randn_pair({N, C}, 7, dt);
  layernorm_backward(acc.cpu, dw.cpu, db.cpu, dout.cpu, x.cpu, w.cpu, mean_c, rstd_c, true);
  layernorm_backward(acc.gpu, dw.gpu, db.gpu, dout.gpu, x.gpu, w.gpu, mean_g, rstd_g, true);
  EXPECT_CLOSE(acc.gpu, acc.cpu, tol_for(dt));
  EXPECT_CLOSE(dw.gpu, dw.cpu, 1e-4);
  EXPECT_CLOSE(db.gpu, db.cpu, 1e-4);
}

TEST_P(CudaNorm, RmsNormForwardBackward) {
  QT_SKIP_WITHOUT_GPU();
  const auto [N, C, dt] = GetParam();
  Pair x = randn_pair({N, C}, 11, dt, 2.f);
  Pair w = randn_pair({C}, 12, DType::BF16);
  Pair out = pair(Tensor::zeros({N, C}, DType::F32), dt);
  Tensor rstd_c = Tensor::zeros({N}, DType::F32);
  Tensor rstd_g = rstd_c.to(Device::CUDA);
  rmsnorm_forward(out.cpu, rstd_c, x.cpu, w.cpu, 1e-6f);
  rmsnorm_forward(out.gpu, rstd_g, x.gpu, w.gpu, 1e-6f);
  EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
  EXPECT_CLOSE(rstd_g, rstd_c, 1e-5);

  Pair dout = randn_pair({N, C}, 13, dt);
  Pair dx = pair(Tensor::zeros({N, C}, DType::F32), dt);
  Pair dw = randn_pair({C}, 14, DType::F32);
  rmsnorm_backward(dx.cpu, dw.cpu, dout.cpu, x.cpu, w.cpu, rstd_c);
  rmsnorm_backward(dx.gpu, dw.gpu, dout.gpu, x.gpu, w.gpu, rstd_g);
  EXPECT_CLOSE(dx.gpu, dx.cpu, tol_for(dt));
  EXPECT_CLOSE(dw.gpu, dw.cpu, 1e-4);

  Pair acc = randn_pair({N, C}, 15, dt);  // dx += the gradient
  rmsnorm_backward(acc.cpu, Tensor(), dout.cpu, x.cpu, w.cpu, rstd_c, true);
  rmsnorm_backward(acc.gpu, Tensor(), dout.gpu, x.gpu, w.gpu, rstd_g, true);
  EXPECT_CLOSE(acc.gpu, acc.cpu, tol_for(dt));
}

// 768/576/4096: GPT-2, SmolLM2, LLaMA-7B widths (16-byte vector path);
// 100 and 7: widths no vector divides (scalar fallback); 9000: dw/db need >48 KB shared.
// 5000 x 1024 and 2100 x 1000: several rows per warp in backward.
// Fewer rows than SMs take the block-per-row forward (decode steps; 9000 is too
// wide for it), 300 and 257 rows the warp-per-row one.
// The fused residual add: x's stored sum and the norm are the same bits as add_inplace then the norm
// on the GPU (every shape above: the row kernel at N < SMs, the warp kernel, unaligned C), and close
// to the CPU reference.
TEST_P(CudaNorm, AddThenNormFusedEqualsTheTwoOps) {
  QT_SKIP_WITHOUT_GPU();
  const auto [N, C, dt] = GetParam();
  const Pair x = randn_pair({N, C}, 21, dt, 2.f), r = randn_pair({N, C}, 22, dt);
  const Pair w = randn_pair({C}, 23, DType::BF16), b = randn_pair({C}, 24, DType::F32);
  for (bool rms : {true, false}) {
    SCOPED_TRACE(rms ? "rmsnorm" : "layernorm");
    Tensor xf = x.gpu.clone(), xs = x.gpu.clone(), xc = x.cpu.clone();
    Pair out = pair(Tensor::zeros({N, C}, DType::F32), dt);
    Tensor out2 = out.gpu.clone();
    Tensor mean[3], rstd[3];  // fused, separate (GPU), CPU
    for (int i = 0; i < 3; ++i)
      mean[i] = Tensor::zeros({N}, DType::F32, i < 2 ? Device::CUDA : Device::CPU), rstd[i] = mean[i].clone();
    add_inplace(xs, r.gpu);
    if (rms) {
      add_rmsnorm_forward(out.gpu, rstd[0], xf, r.gpu, w.gpu, 1e-6f);
      rmsnorm_forward(out2, rstd[1], xs, w.gpu, 1e-6f);
      add_rmsnorm_forward(out.cpu, rstd[2], xc, r.cpu, w.cpu, 1e-6f);
    } else {
      add_layernorm_forward(out.gpu, mean[0], rstd[0], xf, r.gpu, w.gpu, b.gpu, 1e-5f);
      layernorm_forward(out2, mean[1], rstd[1], xs, w.gpu, b.gpu, 1e-5f);
      add_layernorm_forward(out.cpu, mean[2], rstd[2], xc, r.cpu, w.cpu, b.cpu, 1e-5f);
    }
    EXPECT_EQ(vec(xf), vec(xs));
    EXPECT_EQ(vec(out.gpu), vec(out2));
    EXPECT_EQ(vec(rstd[0]), vec(rstd[1]));
    EXPECT_CLOSE(xf, xc, tol_for(dt));
    EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
    // The CPU sums stay F32 where the GPU's are rounded to BF16: statistics as close as the sums.
    EXPECT_CLOSE(rstd[0], rstd[2], dt == DType::BF16 ? 1e-3 : 1e-5);
    if (!rms) EXPECT_EQ(vec(mean[0]), vec(mean[1]));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaNorm,
                         ::testing::Values(NormCase{37, 768, DType::BF16}, NormCase{64, 576, DType::BF16},
                                           NormCase{9, 4096, DType::BF16}, NormCase{33, 100, DType::BF16},
                                           NormCase{5, 7, DType::F32}, NormCase{37, 768, DType::F32},
                                           NormCase{3, 9000, DType::BF16}, NormCase{1, 4096, DType::BF16},
                                           NormCase{1, 576, DType::BF16}, NormCase{2, 5000, DType::BF16}, NormCase{3, 1001, DType::F32},
                                           NormCase{300, 4096, DType::BF16}, NormCase{257, 100, DType::BF16},
                                           NormCase{200, 768, DType::F32},
                                           // More rows than a wave of warps: each warp sums several rows
                                           // into its slot-ordered dw/db partials (GPT-2-medium's width).
                                           NormCase{5000, 1024, DType::BF16}, NormCase{2100, 1000, DType::F32}));

}  // namespace
}  // namespace qtrain::testing
