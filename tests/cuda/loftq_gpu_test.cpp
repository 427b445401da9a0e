// LoftQ initialisation on the GPU (models/loftq.h, kernels/cuda/svd.cu) against
// the LAPACK reference: the truncated SVD split, LoftQ's rounds, peft's
// fixtures (tests/fixtures/make_loftq_fixtures.py) and a whole QLoRA model.
// Both backends fix the SVD's signs the same way (kernels/svd.h), so the
// factors themselves are compared too, where singular values are apart.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/matmul.h"
#include "kernels/svd.h"
#include "models/loftq.h"
#include "models/model.h"
#include "models/quant_weight.h"
#include "models/safetensors.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

// B A on the host, F32.
Tensor product(const LowRankPair& p) {
  const Tensor b = p.b.to(Device::CPU), a = p.a.to(Device::CPU);
  Tensor d = Tensor::empty({b.size(0), a.size(1)}, DType::F32);
  gemm(d, b, a, false, false);
  return d;
}

// sigma_j = ||b[:, j]|| ||a[j, :]||, and the largest | ||b[:, j]|| - ||a[j, :]|| |
// relative to sigma_1 (B = U sqrt(S), A = sqrt(S) Vh split S evenly).
struct Spectrum {
  std::vector<double> sigma;
  double uneven = 0.0;
};
Spectrum spectrum(const LowRankPair& p) {
  const Tensor b = p.b.to(Device::CPU), a = p.a.to(Device::CPU);
  const int64_t m = b.size(0), r = b.size(1), n = a.size(1);
  Spectrum s;
  for (int64_t j = 0; j < r; ++j) {
    double nb = 0, na = 0;
    for (int64_t i = 0; i < m; ++i) nb += double(b.f32()[i * r + j]) * b.f32()[i * r + j];
    for (int64_t i = 0; i < n; ++i) na += double(a.f32()[j * n + i]) * a.f32()[j * n + i];
    s.sigma.push_back(std::sqrt(nb) * std::sqrt(na));
    s.uneven = std::max(s.uneven, std::fabs(std::sqrt(nb) - std::sqrt(na)));
  }
  s.uneven /= std::sqrt(std::max(s.sigma[0], 1e-30));
  return s;
}

std::unique_ptr<BaseWeight> nf4(const Tensor& w) {
  return std::make_unique<Block4Weight>(w, quant::Code4::NF4, /*double_quant=*/false);
}

// Wide, tall, square, r up to 64, r above min(rows, cols), and a matrix of rank
// 5 (its factors past rank 5 are noise on the CPU and zero on the GPU: either
// way B A is the matrix).
TEST(CudaLoftq, LowRankSplitMatchesLapack) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t m, n;
    int r;
  };
  for (const Case c : {Case{96, 256, 8}, Case{256, 96, 16}, Case{128, 128, 64}, Case{200, 330, 64}, Case{330, 200, 64},
                       Case{40, 64, 48}}) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + " r " + std::to_string(c.r));
    const Tensor m = randn({c.m, c.n}, uint64_t(c.m * 1000 + c.n), 0.05f);
    const LowRankPair cpu = low_rank_split(m, c.r);
    const LowRankPair gpu = low_rank_split(m.to(Device::CUDA), c.r);
    ASSERT_TRUE(gpu.b.is_cuda() && gpu.a.is_cuda());
    ASSERT_EQ(gpu.b.shape(), cpu.b.shape());
    ASSERT_EQ(gpu.a.shape(), cpu.a.shape());
    // Gaussian matrices' singular values lie ~1% apart, so an F32 SVD's B A is
    // good to ~eps32 / 1e-2 (seen on the CPU against torch: ~3e-6).
    EXPECT_LT(norm_rel_err(vec(product(gpu)), vec(product(cpu))), 1e-4);
    const Spectrum sg = spectrum(gpu), sc = spectrum(cpu);
    for (int j = 0; j < c.r; ++j) EXPECT_NEAR(sg.sigma[size_t(j)], sc.sigma[size_t(j)], 1e-5 * sc.sigma[0]) << j;
    for (int j = 1; j < c.r; ++j) EXPECT_LE(sg.sigma[size_t(j)], sg.sigma[size_t(j - 1)] * (1 + 1e-6)) << j;
    EXPECT_LT(sg.uneven, 1e-5);
    // The factors, one by one: the same signs on both backends (a wrong one is an error of 2).
    const int64_t kr = std::min<int64_t>(std::min(c.m, c.n), c.r);
    const Tensor bg = gpu.b.to(Device::CPU), ag = gpu.a.to(Device::CPU);
    for (int64_t j = 0; j < kr; ++j) {
      std::vector<float> xg, xc;
      for (int64_t i = 0; i < c.m; ++i) xg.push_back(bg.f32()[i * c.r + j]), xc.push_back(cpu.b.f32()[i * c.r + j]);
      for (int64_t i = 0; i < c.n; ++i) xg.push_back(ag.f32()[j * c.n + i]), xc.push_back(cpu.a.f32()[j * c.n + i]);
      EXPECT_LT(norm_rel_err(xg, xc), 1e-3) << "factor " << j;
    }
    // past min(rows, cols): zero columns of B and rows of A
    const int64_t k = std::min(c.m, c.n);
    for (int64_t j = k; j < c.r; ++j) EXPECT_EQ(sg.sigma[size_t(j)], 0.0) << j;
  }
  // A rank-5 matrix at r 8: recovered exactly.
  const LowRankPair p{randn({150, 5}, 1, 1.f), randn({5, 70}, 2, 1.f)};
  const Tensor m5 = product(p);
  const LowRankPair g = low_rank_split(m5.to(Device::CUDA), 8);
  EXPECT_LT(norm_rel_err(vec(product(g)), vec(m5)), 1e-5);
  EXPECT_LT(spectrum(g).sigma[5], 1e-5 * spectrum(g).sigma[0]);
}

// Factors on another device than m are refused (the shape rules: tests/kernels/op_check_cases.h).
TEST(CudaLoftq, LowRankSvdRefusesMixedDevices) {
  QT_SKIP_WITHOUT_GPU();
  const Tensor m = Tensor::zeros({8, 6}, DType::F32, Device::CUDA);
  EXPECT_THROW(low_rank_svd(Tensor::empty({8, 2}, DType::F32), Tensor::empty({2, 6}, DType::F32, Device::CUDA), m),
               Error);
}

// LoftQ's rounds with the SVD on the GPU: the same errors as on the CPU,
// decreasing over rounds, and the same start B A.
TEST(CudaLoftq, RoundsMatchTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  const Tensor w = randn({128, 256}, 11, 0.02f);
  const LoftqResult cpu = loftq(w, 8, 5, nf4, Device::CPU);
  const LoftqResult gpu = loftq(w, 8, 5, nf4, Device::CUDA);
  ASSERT_EQ(gpu.rel_err.size(), 5u);
  EXPECT_NEAR(gpu.plain_rel_err, cpu.plain_rel_err, 1e-9);
  EXPECT_LT(gpu.rel_err[0], gpu.plain_rel_err);
  for (size_t k = 0; k < 5; ++k) {
    // peft's torch SVD and LAPACK's agree to ~1e-7 here (Loftq.MatchesPeft: 1e-6)
    EXPECT_NEAR(gpu.rel_err[k], cpu.rel_err[k], 2e-6) << k;
    if (k) EXPECT_LE(gpu.rel_err[k], gpu.rel_err[k - 1] * (1 + 1e-6)) << k;
  }
  EXPECT_LT(gpu.rel_err[4], 0.98 * gpu.rel_err[0]);
  EXPECT_FALSE(gpu.init.b.is_cuda());  // the start comes back to the host
  // Rounds 2..5 quantize W - B A, whose last bits differ between the backends; an
  // entry on a code boundary may then round the other way (error-neutral, so the
  // errors above hold) and move B A by ~1e-3 relative here: a loose bound.
  EXPECT_LT(norm_rel_err(vec(product(gpu.init)), vec(product(cpu.init))), 1e-2);
  // The reported error is ||W - Q - B A|| of what is returned.
  Tensor approx = gpu.base->dense_f32();
  const Tensor ba = product(gpu.init);
  for (int64_t i = 0; i < approx.numel(); ++i) approx.f32()[i] += ba.f32()[i];
  EXPECT_NEAR(norm_rel_err(vec(approx), vec(w)), gpu.rel_err[4], 1e-6);
  // One round quantizes W itself: the same base, bit for bit.
  const LoftqResult g1 = loftq(w, 8, 1, nf4, Device::CUDA), c1 = loftq(w, 8, 1, nf4, Device::CPU);
  EXPECT_EQ(g1.base->dense_f32().to_vector(), c1.base->dense_f32().to_vector());
  EXPECT_LT(norm_rel_err(vec(product(g1.init)), vec(product(c1.init))), 1e-4);
}

// peft's LoftQ (the CPU test's fixtures) with the SVD on the GPU.
TEST(CudaLoftq, MatchesPeft) {
  QT_SKIP_WITHOUT_GPU();
  const nlohmann::json ref = fixture_json("loftq/loftq-ref.json");
  SafetensorsFile f(fixture("loftq/loftq-ref.safetensors"));
  for (const auto& c : ref["cases"]) {
    const std::string n = c["name"];
    const int iters = c["iters"];
    const LoftqResult r = loftq(f.load_f32(n + ".W"), c["r"].get<int>(), iters, nf4, Device::CUDA);
    const LowRankPair want{f.load_f32(n + ".lora_B"), f.load_f32(n + ".lora_A")};
    EXPECT_LT(norm_rel_err(vec(product(r.init)), vec(product(want))), 1e-4) << n;
    EXPECT_NEAR(r.rel_err.back(), c["loftq_rel_err_by_iters"][iters - 1].get<double>(), 1e-6) << n;
    EXPECT_NEAR(r.plain_rel_err, c["plain_nf4_rel_err"].get<double>(), 1e-6) << n;
  }
}

// A QLoRA model on the GPU with --loftq-iters (every targeted Linear, several
// threads sharing the GPU): its merged weights Q + B A are the CPU model's.
TEST(CudaLoftq, QloraModelOnTheGpuStartsWhereTheCpuOneDoes) {
  QT_SKIP_WITHOUT_GPU();
  const LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto merged = [&](Device d) {
    ModelOptions opt;
    opt.method = "qlora";
    opt.device = d;
    opt.lora.r = 8;
    opt.lora.alpha = 8.f;
    opt.loftq_iters = 1;  // one round: the same base on both (later rounds may move a code on a rounding boundary)
    return Model::create(lm.config, *lm.weights, opt)->hf_state_dict(/*merge_adapters=*/true);
  };
  const auto cpu = merged(Device::CPU), gpu = merged(Device::CUDA);
  ASSERT_EQ(cpu.size(), gpu.size());
  int adapted = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_EQ(cpu[i].first, gpu[i].first);
    if (cpu[i].first.find("_proj.weight") == std::string::npos) continue;
    ++adapted;
    // the same packed base, and F32 masters of B and A
    EXPECT_LT(norm_rel_err(vec(gpu[i].second), vec(cpu[i].second)), 1e-4) << cpu[i].first;
  }
  EXPECT_EQ(adapted, 14);  // 2 layers x 7 projections
}

}  // namespace
}  // namespace qtrain::testing
