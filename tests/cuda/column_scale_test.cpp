// The column-scale ops (IA3, DoRA) on the GPU against their CPU references,
// and DoRA / IA3 models on the GPU against peft's fixtures.
#include "kernels/column_scale.h"

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/model_step_compare.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

// 72 and 4096 columns take the 8-wide BF16 kernels, 100 (and F32) the generic ones.
TEST(CudaColumnScale, MulColsAndColDot) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32})
    for (const auto& [N, W] : {std::pair<int64_t, int64_t>{301, 72}, {257, 100}, {64, 4096}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + std::to_string(N) + "x" + std::to_string(W));
      Pair x = randn_pair({N, W}, 1, dt), out = randn_pair({N, W}, 2, dt), b = randn_pair({N, W}, 3, dt);
      Pair v = randn_pair({W}, 4, DType::F32), div = pair(randn({W}, 5, 0.1f), DType::F32);
      for (int64_t i = 0; i < W; ++i) div.cpu.f32()[i] += 2.f;
      div.gpu = div.cpu.to(Device::CUDA);
      mul_cols(out.cpu, x.cpu, v.cpu, -1.f);
      mul_cols(out.gpu, x.gpu, v.gpu, -1.f);
      EXPECT_CLOSE(out.gpu, out.cpu, tol_for(dt));
      // In place, keeping the unscaled values (DoRA): keep must be x exactly.
      Tensor x_before = x.gpu.to(Device::CPU, DType::F32);
      Pair keep = pair(Tensor::zeros({N, W}, DType::F32), dt);
      mul_cols(x.cpu, x.cpu, v.cpu, 0.f, keep.cpu);
      mul_cols(x.gpu, x.gpu, v.gpu, 0.f, keep.gpu);
      EXPECT_CLOSE(x.gpu, x.cpu, tol_for(dt));
      EXPECT_EQ(keep.gpu.to_vector(), x_before.to_vector());
      x = pair(x.gpu.to(Device::CPU, DType::F32), dt);  // the same (BF16-rounded) x on both sides: col_dot alone is compared
      Pair g = randn_pair({W}, 6, DType::F32), g2 = randn_pair({W}, 7, DType::F32);
      col_dot(g.cpu, x.cpu, b.cpu);
      col_dot(g.gpu, x.gpu, b.gpu);
      EXPECT_CLOSE(g.gpu, g.cpu, 1e-5);
      col_dot(g2.cpu, x.cpu, b.cpu, div.cpu);
      col_dot(g2.gpu, x.gpu, b.gpu, div.gpu);
      EXPECT_CLOSE(g2.gpu, g2.cpu, 1e-5);
    }
}

TEST(CudaColumnScale, DoraScale) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t out = 300, r = 8;
  Pair B = randn_pair({out, r}, 1, DType::F32, 0.1f), P = randn_pair({r, out}, 2, DType::BF16);
  Pair Q = randn_pair({r, out}, 3, DType::F32, 0.01f), m = randn_pair({out}, 4, DType::F32);
  Tensor w = randn({out}, 5);
  for (int64_t i = 0; i < out; ++i) w.f32()[i] = 4.f + w.f32()[i] * w.f32()[i];
  Pair wn2 = pair(w, DType::F32);
  Pair scale = pair(Tensor::zeros({out}, DType::F32), DType::F32), norm = pair(Tensor::zeros({out}, DType::F32), DType::F32);
  dora_scale(scale.cpu, norm.cpu, m.cpu, wn2.cpu, B.cpu, P.cpu, Q.cpu, 0.5f);
  dora_scale(scale.gpu, norm.gpu, m.gpu, wn2.gpu, B.gpu, P.gpu, Q.gpu, 0.5f);
  EXPECT_CLOSE(norm.gpu, norm.cpu, 1e-5);
  EXPECT_CLOSE(scale.gpu, scale.cpu, 1e-5);
}

class GpuPeftFamily : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {};

// Loss and gradients within BF16 tolerance of peft's, on a dense and an NF4 base
// (NF4: against the CPU backend on the same method, whose DoRA test pins it to peft).
TEST_P(GpuPeftFamily, LossAndGrads) {
  QT_SKIP_WITHOUT_GPU();
  const auto& [model, type, method] = GetParam();
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  PeftAdapter a = read_peft_adapter(fixture(model + "-" + type));
  auto make = [&](Device dev) {
    auto m = Model::create(lm.config, *lm.weights, adapter_options(a, method, dev));
    apply_peft_adapter(*m, a);
    return m;
  };
  // 5e-2: DoRA's magnitude gradient goes through the BF16 column norms (3.6% on tiny-llama, H200)
  expect_gpu_step_matches_cpu(make, r.batch(), float(1.0 / (r.B * (r.T - 1))), 5e-2, model + " " + type + " " + method);
}

INSTANTIATE_TEST_SUITE_P(Adapters, GpuPeftFamily,
                         ::testing::Combine(::testing::Values("tiny-gpt2", "tiny-llama"), ::testing::Values("dora", "ia3"),
                                            ::testing::Values("lora", "qlora")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" +
                                           std::get<2>(info.param);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace qtrain::testing
