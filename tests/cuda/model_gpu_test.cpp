// The models on --device cuda (BF16 activations, F32 trainable params)
// against the HF fixtures and against the CPU backend over a short training
// run. Tolerances are BF16-sized: 2e-2 on losses, 3e-2 on gradients.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "models/synthetic_model.h"
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

// Offloaded checkpoints (--offload-checkpoints) on a 30-layer model: the inputs of the layers
// recomputed in backward go to pinned host memory and come back one layer ahead of their
// backward. Over two accumulated steps the loss and the gradients are those of keeping them on
// the GPU, and after each forward the allocator holds exactly one block less per parked layer.
TEST(GpuOffloadedCheckpoints, SameGradientsWithTheInputsInHostMemory) {
  QT_SKIP_WITHOUT_GPU();
  LoadedModel lm = load_synthetic_model("random:smollm2-135m");
  const int B = 2, T = 256, L = lm.config.n_layer;
  std::vector<int32_t> ids(size_t(B) * T), tgt(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7919 + 13) % 49152), tgt[i] = int32_t((i * 104729 + 5) % 49152);
  const TokenBatch batch{B, T, ids.data(), tgt.data()};
  const size_t residual = cuda_block_bytes(size_t(B) * T * size_t(lm.config.d_model) * 2);
  struct Run {
    std::vector<double> loss;
    std::vector<size_t> held;  // the allocator's bytes in use after each forward
    std::vector<float> grads;
  };
  auto run = [&](bool checkpoint, int recompute, bool offload) {
    ModelOptions opt = recompute_test_options("qlora", Device::CUDA);
    opt.lora.r = 8;
    opt.grad_checkpoint = checkpoint;
    opt.recompute_layers = recompute;
    opt.offload_checkpoints = offload;
    auto m = Model::create(lm.config, *lm.weights, opt);
    randomize_trainable(*m);
    m->params().zero_grads();
    Run r;
    for (int step = 0; step < 2; ++step) {  // the second reuses the host slots
      const LossSum s = m->forward(batch, 1.f / float(B * T));
      r.held.push_back(cuda_memory_stats().in_use);
      m->backward();
      r.loss.push_back(s.sum / double(s.count));
    }
    for (auto& p : m->params().params()) {
      auto g = p.grad.to_vector();
      r.grads.insert(r.grads.end(), g.begin(), g.end());
    }
    return r;
  };
  for (const auto& [checkpoint, recompute, parked] : {std::tuple{true, 0, L}, std::tuple{false, 10, 10}}) {
    const std::string what = checkpoint ? "every layer recomputed" : "the first 10 layers recomputed";
    const Run kept = run(checkpoint, recompute, false), off = run(checkpoint, recompute, true);
    for (int step = 0; step < 2; ++step) {
      EXPECT_NEAR(off.loss[size_t(step)], kept.loss[size_t(step)], 1e-6 * kept.loss[size_t(step)]) << what;
      EXPECT_EQ(kept.held[size_t(step)] - off.held[size_t(step)], size_t(parked) * residual) << what << " step " << step;
    }
    ASSERT_EQ(off.grads.size(), kept.grads.size());
    EXPECT_LT(norm_rel_err(off.grads, kept.grads), 1e-3) << what;
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
