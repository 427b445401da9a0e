// The models on --device cuda (BF16 activations, F32 trainable params)
// against the HF fixtures and against the CPU backend over a short training
// run. Tolerances are BF16-sized: 2e-2 on losses, 3e-2 on gradients.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"
#include "trainer/grad_clip.h"
#include "trainer/optimizer.h"

namespace qtrain::testing {
namespace {

std::unique_ptr<Model> build(const std::string& dir, Device dev, const PeftAdapter* adapter, uint64_t seed = 0,
                             const std::string& method = "lora") {
  LoadedModel lm = load_hf_model_dir(fixture(dir));
  ModelOptions opt;
  opt.device = dev;
  opt.method = method;
  opt.seed = seed;
  if (adapter) opt = with_adapter_options(opt, *adapter);
  auto m = Model::create(lm.config, *lm.weights, opt);
  if (adapter) apply_peft_adapter(*m, *adapter);
  return m;
}

double mean_loss(const LossSum& s) { return s.sum / double(s.count); }

class GpuHfReference : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuHfReference, BaseLoss) {
  QT_SKIP_WITHOUT_GPU();
  const std::string model = GetParam();
  Ref r = load_ref(model);
  auto m = build(model, Device::CUDA, nullptr);
  double want = r.j["loss"].get<double>();
  EXPECT_NEAR(mean_loss(m->forward(r.batch(), 0.f)), want, 2e-2 * want);
}

TEST_P(GpuHfReference, PeftAdapterLossAndGrads) {
  QT_SKIP_WITHOUT_GPU();
  const std::string model = GetParam();
  Ref r = load_ref(model);
  PeftAdapter a = read_peft_adapter(fixture(model + "-lora"));
  auto m = build(model, Device::CUDA, &a);
  LossSum s = m->forward(r.batch(), 1.f / 30.f);
  ASSERT_EQ(s.count, 30);
  double want = r.j["lora_loss"].get<double>();
  EXPECT_NEAR(mean_loss(s), want, 2e-2 * want);
  m->backward();
  expect_grads_match_peft(*m, SafetensorsFile(fixture(model + "-lora-grads.safetensors")), 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Models, GpuHfReference, ::testing::Values("tiny-llama", "tiny-gpt2"));

// 20 AdamW steps on the fixture batch as the trainer takes them (zero grads,
// forward with 1/tokens, backward, clip at 1.0, step); returns the losses.
std::vector<double> train_curve(const std::string& model, Device dev, const std::string& method = "lora") {
  Ref r = load_ref(model);
  auto m = build(model, dev, nullptr, /*seed=*/42, method);
  AdamW opt(m->params(), {0.9f, 0.999f, 1e-8f, 0.f});
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    m->params().zero_grads();
    LossSum s = m->forward(r.batch(), 1.f / 30.f);
    m->backward();
    GradClip clip = clip_grad_norm(m->params().grads(), 1.f, 1.f);
    opt.step(m->params(), 3e-3f, clip.grad_scale);
    losses.push_back(mean_loss(s));
  }
  return losses;
}

class GpuTrainingCurve : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuTrainingCurve, MatchesCpuPerStep) {
  QT_SKIP_WITHOUT_GPU();
  auto cpu = train_curve(GetParam(), Device::CPU);
  auto gpu = train_curve(GetParam(), Device::CUDA);
  ASSERT_EQ(cpu.size(), gpu.size());
  EXPECT_LT(cpu.back(), cpu.front());  // the run actually learns
  for (size_t i = 0; i < cpu.size(); ++i)
    EXPECT_NEAR(gpu[i], cpu[i], 2e-2 * cpu[i]) << GetParam() << " step " << i;
}

INSTANTIATE_TEST_SUITE_P(Models, GpuTrainingCurve, ::testing::Values("tiny-llama", "tiny-gpt2"));

// Quantized bases: the packed weight on the GPU, dequantized there per product,
// must train like the CPU reference (int8: the CPU forward is LLM.int8's
// decomposition, the GPU's a dequantized product; both within BF16 tolerance).
class GpuQuantizedCurve : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuQuantizedCurve, MatchesCpuPerStep) {
  QT_SKIP_WITHOUT_GPU();
  auto cpu = train_curve("tiny-llama", Device::CPU, GetParam());
  auto gpu = train_curve("tiny-llama", Device::CUDA, GetParam());
  ASSERT_EQ(cpu.size(), gpu.size());
  EXPECT_LT(cpu.back(), cpu.front());
  for (size_t i = 0; i < cpu.size(); ++i)
    EXPECT_NEAR(gpu[i], cpu[i], 2e-2 * cpu[i]) << GetParam() << " step " << i;
}

INSTANTIATE_TEST_SUITE_P(Methods, GpuQuantizedCurve, ::testing::Values("qlora", "nf4-lora", "qlora-fp4", "int8-lora"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// --grad-checkpoint on the GPU, and an activation plan with one layer
// recomputed and one keeping only its GEMM outputs: the loss and the gradients
// of the plain run (BF16 kernels with F32 atomics in attention: the order of
// additions may differ, nothing else).
TEST(GpuGradCheckpoint, SameLossAndGradients) {
  QT_SKIP_WITHOUT_GPU();
  // A full fine-tune's weight gradients read every recomputed activation.
  for (const char* model : {"tiny-llama", "tiny-gpt2"})
    for (const char* method : {"lora", "full"}) {
      LossAndGrads plain = loss_and_grads(model, method, Device::CUDA, false);
      for (const auto& [ckpt, recompute, pointwise] : {std::tuple{true, 0, 0}, std::tuple{false, 1, 1}}) {
        const std::string what = std::string(model) + " " + method + (ckpt ? " checkpointed" : " plan 1+1");
        LossAndGrads got = loss_and_grads(model, method, Device::CUDA, ckpt, recompute, pointwise);
        ASSERT_EQ(plain.grads.size(), got.grads.size()) << what;
        EXPECT_NEAR(got.loss, plain.loss, 1e-5 * plain.loss) << what;
        EXPECT_LT(norm_rel_err(got.grads, plain.grads), 1e-3) << what;
      }
    }
}

}  // namespace
}  // namespace qtrain::testing

namespace qtrain::testing {
namespace {

// One decode step on the GPU equals the GPU full forward's last positions
// (BF16 activations, so within BF16 tolerance), for a dense and a 4-bit base:
// with the KV cache the decode route takes the tensor-core 4-bit product.
class GpuDecodeStep : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(GpuDecodeStep, EqualsFullForward) {
  QT_SKIP_WITHOUT_GPU();
  auto [model, method] = GetParam();
  DecodeVsForward r = decode_vs_forward(model, method, Device::CUDA, 5);
  EXPECT_LT(norm_rel_err(r.decoded, r.full), 2e-2);
}

INSTANTIATE_TEST_SUITE_P(Models, GpuDecodeStep,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-gpt2"),
                                            ::testing::Values("lora", "qlora")),
                         ModelMethodName());

}  // namespace
}  // namespace qtrain::testing
