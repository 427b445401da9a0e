// The GPU memory estimate (trainer/memory_plan.h): its parameter counts are
// the built model's, its weights follow each method's format, and its advice
// names flags that make the run fit.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>

#include "models/model.h"
#include "models/synthetic_model.h"
#include "trainer/memory_plan.h"
#include "kernels/device.h"
#include "kernels/loss.h"

namespace qtrain {

namespace {

ModelOptions gpu_options(const std::string& method) {
  ModelOptions o;
  o.device = Device::CUDA;  // only the estimate: nothing is built on it
  o.method = method;
  o.lora.r = 16;
  o.lora.alpha = 32;
  return o;
}

constexpr double kGiB = double(1 << 30);

MemoryBudget free_gib(double g) { return MemoryBudget::free_memory(g * kGiB); }

}  // namespace

// Model::footprint declares the model without building it: every count must
// be what create() then allocates, for each kind of adapter and for a full fine-tune.
TEST(MemoryPlan, FootprintIsTheBuiltModels) {
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  for (const char* method : {"lora", "qlora", "dora", "ia3", "qblora", "full"}) {
    ModelOptions o;
    o.method = method;
    o.lora.r = 4;
    const ModelFootprint f = Model::footprint(lm.config, o);
    std::unique_ptr<Model> m = Model::create(lm.config, *lm.weights, o);
    EXPECT_EQ(f.trainable, m->trainable_params()) << method;
    int64_t linear = 0, largest = 0;
    int adapted = 0;
    for (const Linear* lin : m->linears()) {
      linear += lin->in() * lin->out();
      largest = std::max(largest, lin->in() * lin->out());
      adapted += lin->adapter() ? 1 : 0;
    }
    EXPECT_EQ(f.frozen_linear + f.trained_linear, linear) << method;
    EXPECT_EQ(f.trained_linear, std::string(method) == "full" ? linear : 0) << method;
    EXPECT_EQ(f.largest_linear, largest) << method;
    EXPECT_EQ(f.adapted, adapted) << method;
  }
}

// peft's count for GPT-2 LoRA r=8 on c_attn + c_proj (SyntheticModel.Gpt2LoraTrainableCountIsPefts), declared only.
TEST(MemoryPlan, FootprintOfGpt2LoraIsPefts) {
  LoadedModel lm = load_synthetic_model("random:gpt2");
  ModelOptions o;
  o.lora.r = 8;
  o.targets = {"c_attn", "c_proj"};
  EXPECT_EQ(Model::footprint(lm.config, o).trainable, 811008);
}

// LLaMA-7B's 6.48 B Linear weights at 4.127 bits (NF4 + double quant) are
// 3.1 GiB, plus 0.5 GiB of BF16 embeddings and head; BF16 takes 4x.
TEST(MemoryPlan, WeightsFollowTheMethodsFormat) {
  const ModelConfig c = load_synthetic_model("random:llama-7b").config;
  const double qlora = estimate_train_memory(c, gpu_options("qlora"), 1, 512).weights / kGiB;
  const double int8 = estimate_train_memory(c, gpu_options("int8-lora"), 1, 512).weights / kGiB;
  const double bf16 = estimate_train_memory(c, gpu_options("lora"), 1, 512).weights / kGiB;
  EXPECT_NEAR(qlora, 3.6, 0.1);
  EXPECT_NEAR(bf16, 12.55, 0.1);
  EXPECT_GT(int8, qlora);
  EXPECT_LT(int8, bf16);
  // LoRA r16 on all 7 projections: 40.0 M parameters, 16 bytes each with AdamW.
  EXPECT_NEAR(estimate_train_memory(c, gpu_options("qlora"), 1, 512).optimizer / kGiB, 0.596, 0.01);
  // A full fine-tune: F32 value, gradient and both moments of all 6.74 B weights.
  EXPECT_NEAR(estimate_train_memory(c, gpu_options("full"), 1, 512).optimizer / kGiB, 100.4, 0.5);
}

TEST(MemoryPlan, ActivationsGrowWithTheBatchAndCheckpointingCutsThem) {
  const ModelConfig c = load_synthetic_model("random:smollm2-135m").config;
  ModelOptions o = gpu_options("qlora");
  const MemoryPlan b4 = estimate_train_memory(c, o, 4, 1024), b8 = estimate_train_memory(c, o, 8, 1024);
  // Twice, but for the GPU allocator's rounding of each tensor to 2 MiB, which weighs
  // more on smaller tensors (SmolLM2's are 4.5 MiB at 4 x 1024); exactly twice on the CPU.
  EXPECT_GT(b8.activations / b4.activations, 1.8);
  EXPECT_LE(b8.activations / b4.activations, 2.0);
  ModelOptions cpu = o;
  cpu.device = Device::CPU;
  EXPECT_NEAR(estimate_train_memory(c, cpu, 8, 1024).activations / estimate_train_memory(c, cpu, 4, 1024).activations,
              2.0, 1e-9);
  EXPECT_EQ(b8.weights, b4.weights);
  EXPECT_EQ(b8.optimizer, b4.optimizer);
  o.grad_checkpoint = true;
  const MemoryPlan ck = estimate_train_memory(c, o, 8, 1024);
  EXPECT_LT(ck.activations * 5, b8.activations);
  EXPECT_LT(ck.total(), b8.total());
  o.grad_checkpoint = false;
  o.lora.dropout = 0.1f;  // LoRA keeps its dropped inputs
  EXPECT_GT(estimate_train_memory(c, o, 8, 1024).activations, b8.activations);
}

// Offloaded checkpoints: the layers recomputed in backward keep their inputs in host memory, so
// the GPU estimate holds L + 1 - parked layer inputs plus two in flight; nothing else moves, and
// a layer that keeps its activations is not parked. On the CPU nothing changes.
TEST(MemoryPlan, OffloadedCheckpointsLeaveTwoLayerInputsOnTheGpu) {
  const ModelConfig c = load_synthetic_model("random:llama-7b").config;
  ModelOptions o = gpu_options("qlora");
  o.grad_checkpoint = true;
  const MemoryPlan ck = estimate_train_memory(c, o, 1, 2048);
  o.offload_checkpoints = true;
  const MemoryPlan off = estimate_train_memory(c, o, 1, 2048);
  const double residual = double(cuda_block_bytes(size_t(2048) * 4096 * 2));  // one BF16 layer input
  EXPECT_DOUBLE_EQ(ck.activations - off.activations, 32 * residual);
  EXPECT_DOUBLE_EQ(off.transient - ck.transient, 2 * residual);
  EXPECT_DOUBLE_EQ(ck.total() - off.total(), 30 * residual);
  EXPECT_EQ(off.weights, ck.weights);
  o.grad_checkpoint = false;  // the plan recomputes 8 layers: only those are parked
  o.recompute_layers = 8;
  ModelOptions kept8 = o;
  kept8.offload_checkpoints = false;
  EXPECT_DOUBLE_EQ(estimate_train_memory(c, kept8, 1, 2048).total() - estimate_train_memory(c, o, 1, 2048).total(),
                   6 * residual);
  ModelOptions cpu = o;
  cpu.device = Device::CPU;
  ModelOptions cpu_plain = cpu;
  cpu_plain.offload_checkpoints = false;
  EXPECT_EQ(estimate_train_memory(c, cpu, 1, 2048).total(), estimate_train_memory(c, cpu_plain, 1, 2048).total());
  // Out of memory with checkpointing alone, the advice names the offload.
  o.recompute_layers = 0;
  const double budget = 0.5 * (ck.total() + off.total());
  const std::string a = memory_advice(c, gpu_options("qlora"), 1, 2048, 1, MemoryBudget{budget, "test budget"});
  EXPECT_NE(a.find("--grad-checkpoint --offload-checkpoints"), std::string::npos) << a;
}

// The loss's logits scratch is sized to the batch: a quarter of the whole logits within
// [64, 256] MiB, never more than the whole (kernels/loss.h).
TEST(MemoryPlan, LogitsChunkFollowsTheBatch) {
  const int64_t V = 32000;  // LLaMA's; rows of 128000 bytes
  EXPECT_EQ(loss_chunk_rows(2048, V), 512);             // 1 x 2048: 250 MiB whole, 64 MiB chunks
  EXPECT_EQ(loss_chunk_rows(8192, V), 2048);            // 4 x 2048: a quarter is 250 MiB
  EXPECT_EQ(loss_chunk_rows(32768, V), 2048);           // capped at 256 MiB
  EXPECT_EQ(loss_chunk_rows(100, V), 100);              // the whole batch, under 64 MiB
  EXPECT_EQ(loss_chunk_rows(16384, 49152), 1280);       // SmolLM2 at 16 x 1024: 256 MiB chunks, as before
  EXPECT_EQ(loss_chunk_rows(2048, V, size_t(256) << 20), 2048);  // QT_LOSS_CHUNK_MIB=256
  EXPECT_EQ(loss_chunk_bytes(2048, V), size_t(512) * 32000 * 4);
}

TEST(MemoryPlan, NoAdviceWhenItFits) {
  const ModelConfig c = load_synthetic_model("random:llama-7b").config;
  EXPECT_EQ(memory_advice(c, gpu_options("qlora"), 1, 512, 1, free_gib(80)), "");
}

// Too large a batch: the advice names a batch size and an accumulation that
// keep the step's tokens, and that batch size fits by the same estimate.
TEST(MemoryPlan, AdviceNamesABatchSizeThatFits) {
  const ModelConfig c = load_synthetic_model("random:llama-7b").config;
  const ModelOptions o = gpu_options("qlora");
  const double free = 80 * kGiB;
  const std::string a = memory_advice(c, o, 64, 2048, 2, MemoryBudget::free_memory(free));
  ASSERT_NE(a, "");
  std::printf("advice: %s\n", a.c_str());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(a, m, std::regex("--batch-size (\\d+) --grad-accum (\\d+)"))) << a;
  const int b = std::stoi(m[1]), accum = std::stoi(m[2]);
  EXPECT_GE(b, 1);
  EXPECT_LT(b, 64);
  EXPECT_GE(b * accum, 64 * 2);
  EXPECT_LE(estimate_train_memory(c, o, b, 2048).total(), free);
  EXPECT_GT(estimate_train_memory(c, o, b + 1, 2048).total(), 0.97 * free * 0.75);  // not far below what fits
  EXPECT_NE(a.find("--grad-checkpoint"), std::string::npos) << a;
  EXPECT_NE(a.find("GiB are free"), std::string::npos) << a;
}

// A model that does not fit at batch 1: say so, and point to a 4-bit base.
TEST(MemoryPlan, AdviceForAModelThatCannotFit) {
  const ModelConfig c = load_synthetic_model("random:llama-70b").config;
  const std::string bf16 = memory_advice(c, gpu_options("lora"), 1, 512, 1, free_gib(80));
  std::printf("advice: %s\n", bf16.c_str());
  EXPECT_NE(bf16.find("The model alone does not fit"), std::string::npos) << bf16;
  EXPECT_NE(bf16.find("--method qlora"), std::string::npos) << bf16;
  // At 4 bits the same model fits.
  EXPECT_EQ(memory_advice(c, gpu_options("qlora"), 1, 512, 1, free_gib(80)), "");
  const std::string q = memory_advice(c, gpu_options("qlora"), 1, 512, 1, free_gib(20));
  EXPECT_NE(q.find("The model alone does not fit"), std::string::npos) << q;
  EXPECT_EQ(q.find("--method qlora"), std::string::npos) << q;  // it already is 4-bit
}

// ---- the activation plan for a budget (plan_activations) ----

namespace {

struct Counts {
  int recompute, pointwise;
  bool operator==(const Counts&) const = default;
  // The planner's preference: fewer layers recomputed whole first, then fewer keeping only GEMM outputs.
  bool before(const Counts& o) const {
    return recompute < o.recompute || (recompute == o.recompute && pointwise < o.pointwise);
  }
};

Counts counts(const ActivationChoice& c) { return {c.options.recompute_layers, c.options.pointwise_layers}; }

double estimate_with(const ModelConfig& c, ModelOptions o, Counts k, int batch, int seq) {
  o.recompute_layers = k.recompute;
  o.pointwise_layers = k.pointwise;
  return estimate_train_memory(c, o, batch, seq).total();
}

MemoryBudget budget_bytes(double bytes) { return MemoryBudget::flag(bytes / kGiB); }

}  // namespace

// The plan's extremes are the two plans that existed before it: keeping
// everything, and --grad-checkpoint (every layer recomputed).
TEST(ActivationPlan, ExtremesAreKeepingEverythingAndGradCheckpointing) {
  const ModelConfig c = load_synthetic_model("random:smollm2-135m").config;
  ModelOptions o = gpu_options("qlora");
  const double none = estimate_train_memory(c, o, 8, 1024).total();
  EXPECT_EQ(estimate_with(c, o, {0, 0}, 8, 1024), none);
  ModelOptions ck = o;
  ck.grad_checkpoint = true;
  EXPECT_EQ(estimate_with(c, o, {c.n_layer, 0}, 8, 1024), estimate_train_memory(c, ck, 8, 1024).total());
  // Keeping only GEMM outputs everywhere lies between the two.
  const double gemm = estimate_with(c, o, {0, c.n_layer}, 8, 1024);
  EXPECT_LT(gemm, none);
  EXPECT_GT(gemm, estimate_train_memory(c, ck, 8, 1024).total());
  // --grad-checkpoint recomputes every layer whatever the budget.
  const ActivationChoice forced = plan_activations(c, ck, 8, 1024, budget_bytes(1000 * kGiB));
  EXPECT_TRUE(forced.fits);
  EXPECT_EQ(forced.describe(c.n_layer),
            "30 layers: 0 keep everything, 0 keep GEMM outputs (norms and SwiGLU/GELU redone), 30 recomputed");
}

// At every budget that an (recompute, pointwise) plan exactly fills, the
// planner returns a plan that fits it and whose every cheaper alternative
// does not: the fewest layers recomputed, then the fewest keeping only GEMM
// outputs. The boundaries are exact: a byte less moves to a costlier plan.
TEST(ActivationPlan, FewestRecomputedLayersThatFitAtEveryBoundary) {
  for (const char* shape : {"random:smollm2-135m", "random:gpt2"}) {
    const ModelConfig c = load_synthetic_model(shape).config;
    const ModelOptions o = gpu_options("lora");
    const int L = c.n_layer;
    for (int k = 0; k <= L; ++k)
      for (int j = 0; j <= L - k; ++j) {
        const double b = estimate_with(c, o, {k, j}, 4, 1024);
        const ActivationChoice got = plan_activations(c, o, 4, 1024, budget_bytes(b));
        const Counts g = counts(got);
        ASSERT_TRUE(got.fits) << shape << " " << k << "," << j;
        EXPECT_LE(got.memory.total(), b);
        EXPECT_EQ(got.memory.total(), estimate_with(c, o, g, 4, 1024));
        EXPECT_TRUE((g == Counts{k, j} || g.before({k, j}))) << shape << " " << k << "," << j;
        if (g.pointwise > 0) EXPECT_GT(estimate_with(c, o, {g.recompute, g.pointwise - 1}, 4, 1024), b);
        if (g.recompute > 0) EXPECT_GT(estimate_with(c, o, {g.recompute - 1, L - g.recompute + 1}, 4, 1024), b);
      }
    const double all = estimate_with(c, o, {0, 0}, 4, 1024);
    EXPECT_EQ(counts(plan_activations(c, o, 4, 1024, budget_bytes(all))), (Counts{0, 0})) << shape;
    EXPECT_EQ(counts(plan_activations(c, o, 4, 1024, budget_bytes(all - 1))), (Counts{0, 1})) << shape;
    // Every layer keeping only GEMM outputs is the least that recomputes no layer whole.
    const double gemm = estimate_with(c, o, {0, L}, 4, 1024);
    EXPECT_EQ(counts(plan_activations(c, o, 4, 1024, budget_bytes(gemm))).recompute, 0) << shape;
    EXPECT_EQ(counts(plan_activations(c, o, 4, 1024, budget_bytes(gemm - 1))).recompute, 1) << shape;
  }
}

// A smaller budget never recomputes less; below what recomputing every layer
// needs, nothing fits and the advice names the flags that would.
TEST(ActivationPlan, SmallerBudgetsRecomputeMoreUntilNothingFits) {
  const ModelConfig c = load_synthetic_model("random:llama-7b").config;
  const ModelOptions o = gpu_options("qlora");
  const double top = estimate_with(c, o, {0, 0}, 4, 2048), bottom = estimate_with(c, o, {c.n_layer, 0}, 4, 2048);
  std::printf("LLaMA-7B QLoRA r16 4 x 2048: keep everything %.2f GiB, recompute every layer %.2f GiB\n", top / kGiB,
              bottom / kGiB);
  Counts last{0, 0};
  int plans = 0;
  for (double b = top * 1.05; b >= bottom; b -= 0.05 * kGiB) {
    const ActivationChoice got = plan_activations(c, o, 4, 2048, budget_bytes(b));
    ASSERT_TRUE(got.fits) << b / kGiB;
    EXPECT_LE(got.memory.total(), b);
    EXPECT_FALSE(counts(got).before(last)) << b / kGiB << " GiB";
    plans += !(counts(got) == last);
    last = counts(got);
  }
  EXPECT_EQ(last.recompute, c.n_layer - 1);  // the last kept layer costs no more than one recomputed
  EXPECT_GT(plans, c.n_layer);  // the pointwise tier and then each recomputed layer in turn
  const ActivationChoice none = plan_activations(c, o, 4, 2048, budget_bytes(bottom - 1));
  EXPECT_FALSE(none.fits);
  EXPECT_EQ(none.memory.total(), bottom);
  const std::string a = memory_advice(c, none.options, 4, 2048, 1, budget_bytes(bottom - 1));
  std::printf("advice: %s\n", a.c_str());
  for (const char* word : {"--memory-budget is", "--batch-size 3 --grad-accum 2", "--offload-checkpoints", "--no-memory-check"})
    EXPECT_NE(a.find(word), std::string::npos) << word << " in: " << a;
  EXPECT_EQ(a.find("--grad-checkpoint"), std::string::npos) << a;  // it recomputes every layer already
}

}  // namespace qtrain
