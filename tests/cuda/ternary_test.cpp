// BitNet's quantizers (kernels/ternary.h) on the GPU against their CPU
// references, and a BitNet model's loss and gradients on the GPU against the
// CPU backend at three points of the lambda warmup.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/norm.h"
#include "kernels/ternary.h"

#include "models/merged_model.h"
#include "models/model.h"
#include "models/ternary_export.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/model_step_compare.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

TEST(CudaTernary, QuantizersMatchTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (float lam : {0.f, 0.3f, 1.f}) {
    // F32 in and out: the same arithmetic, so the same levels (sums in double on both).
    Pair w = randn_pair({257, 130}, 1, DType::F32, 0.02f), wq = randn_pair({257, 130}, 2, DType::F32);
    ternary_fake_quant(wq.cpu, w.cpu, lam);
    ternary_fake_quant(wq.gpu, w.gpu, lam);
    EXPECT_CLOSE(wq.gpu, wq.cpu, 1e-6);
    Pair x = randn_pair({37, 300}, 3, DType::F32, 3.f), xq = randn_pair({37, 300}, 4, DType::F32);
    int8_act_fake_quant(xq.cpu, x.cpu, lam);
    int8_act_fake_quant(xq.gpu, x.gpu, lam);
    EXPECT_CLOSE(xq.gpu, xq.cpu, 1e-6);
    // BF16 activations, as the CUDA backend feeds them
    Pair xb = randn_pair({37, 300}, 5, DType::BF16, 3.f), xqb = randn_pair({37, 300}, 6, DType::BF16);
    int8_act_fake_quant(xqb.cpu, xb.cpu, lam);
    int8_act_fake_quant(xqb.gpu, xb.gpu, lam);
    EXPECT_CLOSE(xqb.gpu, xqb.cpu, kBf16Tol);
  }
}

TEST(CudaTernary, BitNetModelMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    for (int64_t step : {0, 10, 40}) {
      auto make = [&](Device dev) {
        ModelOptions o;
        o.device = dev;
        o.method = "bitnet";
        o.bitnet_warmup = 20;
        auto m = Model::create(lm.config, *lm.weights, o);
        m->set_step(step);
        return m;
      };
      // 1e-1, not BF16's usual 3e-2: the activations are quantized to int8 from BF16 on the GPU and
      // from F32 on the CPU, so a few codes land one step (absmax / 127) apart; those flips move the
      // gradients by 5-7% (H200). A wrong gradient is off by 100%.
      expect_gpu_step_matches_cpu(make, r.batch(), float(1.0 / (r.B * (r.T - 1))), 1e-1,
                                  std::string(name) + " step " + std::to_string(step));
    }
  }
}

// Bit-for-bit equality of two [n, rows] products; on a difference, how many and the first few
// (x row, output column, got, want), which tell a fragment-layout slip from a race.
::testing::AssertionResult SameProduct(const std::vector<float>& got, const std::vector<float>& want, int64_t rows) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes " << got.size() << " vs " << want.size();
  int64_t bad = 0;
  std::ostringstream first;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && ++bad <= 6)
      first << " (" << int64_t(i) / rows << ", " << int64_t(i) % rows << "): " << got[i] << " vs " << want[i] << ";";
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " values differ;" << first.str();
}

// The 2-bit codes unpacked, and the W2A8 product: the dp4a GEMV (rows of x up
// to kTernaryGemvMaxRows, rows of whole 16-byte loads) and the int8 GEMM path
// (more rows, or a ragged row) give the CPU reference's F32 values bit for bit.
TEST(CudaTernary, W2A8MatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  // 1088 columns: 17 loads per row (a partial [32][4] slot group of x in shared memory); 5000 rows:
  // more than the persistent warps (a warp takes batches of 6 rows of one load per lane, several
  // batches); 3000 x 4096: batches of 3 rows of 2 loads; 700 x 8256: 129 loads, one row of 5 per
  // lane (some lanes 4); 13056: 204 loads, two rounds per row.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{72, 256}, {72, 40}, {72, 1088}, {5000, 256}, {3000, 4096},
                            {700, 8256}, {16, 13056}}) {
    Tensor w = randn({rows, cols}, 7, 0.05f);
    const TernaryTensor th = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), rows, cols));
    const TernaryTensor td = th.to(Device::CUDA);
    Tensor lc = Tensor::empty({rows, cols}, DType::I8), wc = Tensor::empty({rows, cols}, DType::F32);
    unpack_ternary(lc, th);
    unpack_ternary(wc, th);
    Tensor lg = Tensor::empty({rows, cols}, DType::I8, Device::CUDA), wg = Tensor::empty({rows, cols}, DType::BF16, Device::CUDA);
    unpack_ternary(lg, td);
    unpack_ternary(wg, td);
    EXPECT_EQ(lg.to(Device::CPU, DType::F32).to_vector(), lc.to(Device::CPU, DType::F32).to_vector()) << cols;
    EXPECT_CLOSE(wg, wc, kBf16Tol);
    for (int64_t n : {1, 3, 8, 40}) {
      Pair x = randn_pair({n, cols}, uint64_t(n), DType::F32, 2.f);
      Tensor yc = Tensor::empty({n, rows}, DType::F32), yg = Tensor::empty({n, rows}, DType::F32, Device::CUDA);
      ternary_matmul(yc, x.cpu, th);
      ternary_matmul(yg, x.gpu, td);
      EXPECT_TRUE(SameProduct(yg.to_vector(), yc.to_vector(), rows)) << "cols " << cols << " n " << n;
      Pair xb = randn_pair({n, cols}, uint64_t(n) + 100, DType::BF16, 2.f);  // BF16 in and out, as the model runs
      Tensor ybg = Tensor::empty({n, rows}, DType::BF16, Device::CUDA);
      ternary_matmul(yc, xb.cpu, th);
      ternary_matmul(ybg, xb.gpu, td);
      EXPECT_CLOSE(ybg, yc, kBf16Tol);
    }
  }
}

// x's int8 rows on the GPU (kernels/cuda/ternary_act.cu): without the SubLN
// the CPU's codes, absmax and sums exactly (the same BF16 or F32 values in);
// with it, bit for bit the GPU's composition (rmsnorm_forward, then the
// quantization) in each of its regimes: a block per row (fewer rows than SMs),
// a warp per row (rows up to 1536 BF16 / 768 F32 held in registers), and the
// composition itself beyond; against the CPU's F32 SubLN, codes one step apart
// at most (BF16 rounds the norm's output first).
TEST(CudaTernary, Q8RowsMatchTheCpuAndTheComposition) {
  QT_SKIP_WITHOUT_GPU();
  const auto codes = [](const Q8Rows& a) { return a.q.to(Device::CPU, DType::F32).to_vector(); };
  const auto sums = [](const Q8Rows& a) { return a.sum.to(Device::CPU, DType::F32).to_vector(); };
  for (auto [n, cols] : {std::pair<int64_t, int64_t>{1, 4096}, {3, 576}, {5, 40}, {7, 11008}, {300, 576}, {200, 1536},
                         {150, 36}, {140, 2048}, {1000, 760}}) {
    for (DType dt : {DType::BF16, DType::F32}) {
      Pair x = randn_pair({n, cols}, uint64_t(n * 7 + cols), dt, 3.f);
      const std::string at = std::to_string(n) + "x" + std::to_string(cols) + " " + dtype_name(dt);
      const Q8Rows gc = Q8Rows::empty(n, cols, Device::CUDA), cc = Q8Rows::empty(n, cols, Device::CPU);
      quantize_act_q8(gc, x.gpu, false);
      quantize_act_q8(cc, x.cpu, false);
      EXPECT_EQ(codes(gc), codes(cc)) << at;
      EXPECT_EQ(gc.absmax.to_vector(), cc.absmax.to_vector()) << at;
      EXPECT_EQ(sums(gc), sums(cc)) << at;

      const Q8Rows gf = Q8Rows::empty(n, cols, Device::CUDA), gcomp = Q8Rows::empty(n, cols, Device::CUDA);
      quantize_act_q8(gf, x.gpu, true);
      Tensor xn = Tensor::empty({n, cols}, dt, Device::CUDA);
      rmsnorm_forward(xn, Tensor(), x.gpu, Tensor::from_elements(std::vector<float>(size_t(cols), 1.f), {cols}, DType::F32).to(Device::CUDA),
                      kSubLnEps);
      quantize_act_q8(gcomp, xn, false);
      EXPECT_EQ(codes(gf), codes(gcomp)) << at << " subln";
      EXPECT_EQ(gf.absmax.to_vector(), gcomp.absmax.to_vector()) << at << " subln";
      EXPECT_EQ(sums(gf), sums(gcomp)) << at << " subln";

      const Q8Rows cf = Q8Rows::empty(n, cols, Device::CPU);
      quantize_act_q8(cf, x.cpu, true);
      const std::vector<float> a = codes(gf), b = codes(cf);
      int64_t off = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_LE(std::fabs(a[i] - b[i]), 1.f) << at << " subln element " << i;
        off += a[i] != b[i];
      }
      // BF16 rounds the norm's output by up to 2^-9 relative: up to a quarter step at code 127
      EXPECT_LE(off, int64_t(a.size()) / (dt == DType::BF16 ? 5 : 100) + 1) << at << " subln: codes one step from the CPU's";
      EXPECT_CLOSE(gf.absmax.to(Device::CPU), cf.absmax, dt == DType::BF16 ? 5e-3 : 1e-5);
    }
  }
}

// The W2A8 product on rows quantized beforehand (ternary_matmul_q8) equals the
// CPU's bit for bit on the same rows, on each GPU path: the GEMV (up to 8 rows),
// the fused wgmma kernel (SmolLM2 shapes) and the general int8 GEMM.
TEST(CudaTernary, Q8ProductMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case { int64_t rows, cols, n; };
  for (const Case c : {Case{576, 576, 1}, Case{576, 576, 8}, Case{576, 576, 300}, Case{1536, 576, 77}, Case{72, 1088, 3},
                       Case{3000, 4096, 1}, Case{3000, 4096, 40}, Case{72, 40, 1}, Case{72, 40, 9}, Case{64, 768, 5}}) {
    Tensor w = randn({c.rows, c.cols}, 13, 0.05f);
    const TernaryTensor th = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), c.rows, c.cols));
    const TernaryTensor td = th.to(Device::CUDA);
    Pair x = randn_pair({c.n, c.cols}, uint64_t(c.n + 3 * c.cols), DType::F32, 2.f);
    const Q8Rows ac = Q8Rows::empty(c.n, c.cols, Device::CPU);
    quantize_act_q8(ac, x.cpu, true);
    const Q8Rows ag{ac.q.to(Device::CUDA), ac.absmax.to(Device::CUDA), ac.sum.to(Device::CUDA)};
    Tensor yc = Tensor::empty({c.n, c.rows}, DType::F32), yg = Tensor::empty({c.n, c.rows}, DType::F32, Device::CUDA);
    ternary_matmul_q8(yc, ac, th);
    ternary_matmul_q8(yg, ag, td);
    EXPECT_TRUE(SameProduct(yg.to_vector(), yc.to_vector(), c.rows)) << c.rows << "x" << c.cols << " n " << c.n;
    Tensor yb = Tensor::empty({c.n, c.rows}, DType::BF16, Device::CUDA);
    ternary_matmul_q8(yb, ag, td);
    EXPECT_CLOSE(yb, yc, kBf16Tol);
  }
}

// The fused kernel (kernels/cuda/ternary_gemm.cu) against the general path
// (int8 levels, cuBLASLt, LLM.int8 epilogue) on the GPU, bit for bit, at
// SmolLM2's shapes (K = 576: a last column chunk of 64) and at edges: the
// largest K, one 64-column slice, a channel block mostly past the rows, x rows
// that end inside a 128-row tile, more tiles than resident blocks (8000 x 576:
// each block walks several, its producer's code ring running across them), BF16
// and F32 on either side (the epilogue's quad exchange stores both), and each channel
// block width (QT_W2A8_NB 1-3: one, two, three 64-channel blocks a tile) besides
// the one the shape picks, with the last round's tiles as two channel halves each
// (NB 2 and 3: most cases here, m64n64 / m64n96 products) and without
// (QT_W2A8_SPLIT=0). (W2A8MatchesTheCpu holds the fused kernel to the CPU.)
TEST(CudaTernary, FusedW2A8MatchesTheGeneralPath) {
  QT_SKIP_WITHOUT_GPU();
  struct Case { int64_t rows, cols, n; };
  for (const Case c : {Case{576, 576, 1000}, Case{576, 576, 8000}, Case{1536, 576, 777}, Case{576, 1536, 300},
                       Case{200, kTernaryGemmMaxCols, 130}, Case{136, 64, 65}, Case{192, 576, 9}, Case{64, 768, 200}}) {
    Tensor w = randn({c.rows, c.cols}, 11, 0.05f);
    const TernaryTensor td = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), c.rows, c.cols)).to(Device::CUDA);
    ASSERT_TRUE(ternary_gemm_fused_shape(c.rows, c.cols)) << c.rows << "x" << c.cols;
    for (DType xt : {DType::BF16, DType::F32})
      for (DType yt : {DType::F32, DType::BF16}) {
        Pair x = randn_pair({c.n, c.cols}, uint64_t(c.n + c.cols), xt, 2.f);
        Tensor yg = Tensor::empty({c.n, c.rows}, yt, Device::CUDA);
        setenv("QT_W2A8_FUSED", "0", 1);
        ternary_matmul(yg, x.gpu, td);
        unsetenv("QT_W2A8_FUSED");
        const std::vector<float> general = yg.to(Device::CPU, DType::F32).to_vector();
        for (const char* split : {"", "0"})
          for (const char* nb : {"", "1", "2", "3"}) {
            if (*nb) setenv("QT_W2A8_NB", nb, 1);
            if (*split) setenv("QT_W2A8_SPLIT", split, 1);
            // filled with 7s: an entry the kernel does not write shows
            Tensor yf = Tensor::from_vector(std::vector<float>(size_t(c.n * c.rows), 7.f), {c.n, c.rows}, Device::CUDA, yt);
            ternary_matmul(yf, x.gpu, td);
            unsetenv("QT_W2A8_NB");
            unsetenv("QT_W2A8_SPLIT");
            EXPECT_TRUE(SameProduct(yf.to(Device::CPU, DType::F32).to_vector(), general, c.rows))
                << c.rows << "x" << c.cols << " n " << c.n << " x " << dtype_name(xt) << " y " << dtype_name(yt)
                << " nb '" << nb << "' split '" << split << "'";
          }
      }
  }
  // Shapes it does not take go the general path (W2A8MatchesTheCpu: 72 x 40, 3000 x 4096; 72 x 1088 is fused,
  // against the CPU).
  EXPECT_FALSE(ternary_gemm_fused_shape(72, 40));
  EXPECT_FALSE(ternary_gemm_fused_shape(72, 1600));
  EXPECT_FALSE(ternary_gemm_fused_shape(576, 2048));
  EXPECT_FALSE(ternary_gemm_fused_shape(3000, 4096));
  EXPECT_FALSE(ternary_gemm_fused_shape(100, 576));
}

// LoRA on a frozen ternary base (--method bitnet-lora) on the GPU: loss and
// adapter gradients against the CPU backend.
TEST(CudaTernary, BitNetLoraMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (const char* name : {"tiny-llama", "tiny-gpt2"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    auto make = [&](Device dev) {
      ModelOptions o;
      o.device = dev;
      o.method = "bitnet-lora";
      auto m = Model::create(lm.config, *lm.weights, o);
      uint64_t seed = 1;
      for (auto& p : m->params().params())  // B != 0: every adapter gradient is live
        if (p.name.find("lora_B") != std::string::npos) p.value.copy_from(randn(p.shape, seed++, 0.05f).to(dev, p.value.dtype()));
      return m;
    };
    // int8 activation codes from BF16 vs F32 inputs: see BitNetModelMatchesTheCpu
    expect_gpu_step_matches_cpu(make, r.batch(), float(1.0 / (r.B * (r.T - 1))), 1e-1, name);
  }
}

}  // namespace
}  // namespace qtrain::testing
