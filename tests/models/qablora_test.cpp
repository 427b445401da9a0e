// QA-BLoRA (models/adapters/qablora.h on models/asym4_weight.h): the merged
// pure 4-bit model's loss equals the adapter's, where merging in float and
// quantizing again does not; the merge keeps every code and scale; the export
// reads back; the adapter's gradient against finite differences; save / read
// of the adapter; clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "models/adapters/qablora.h"
#include "models/asym4_export.h"
#include "models/asym4_weight.h"
#include "models/merged_model.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

double mean_loss(Model& m, const Ref& r, bool backward = false) { return ref_mean_loss(m, r, backward); }

// tiny-llama on the qablora method, H moved off zero so that it changes the loss.
std::unique_ptr<Model> trained_qablora(const LoadedModel& lm, const std::string& adapter = "qablora") {
  ModelOptions opt;
  opt.method = "qablora";
  opt.adapter_type = adapter;
  auto m = Model::create(lm.config, *lm.weights, opt);
  uint64_t seed = 5;
  for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));
  return m;
}

double rel(double a, double b) { return std::fabs(a - b) / std::fabs(b); }

TEST(QABlora, MergedFourBitModelEqualsTheAdapter) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm);
  ModelOptions none;
  none.targets = {};
  none.method = "qablora";
  const double base = mean_loss(*Model::create(lm.config, *lm.weights, none), r);
  const double adapter = mean_loss(*m, r);
  const double exact = mean_loss(*merge_qablora_4bit(*m, ModelOptions{}), r);
  // Naive: the float merge dequant(W) + dW quantized again, to NF4 + double quant
  // (QLoRA's --requantize nf4) and to the same 8 x 4 asymmetric tiles.
  const double naive_nf4 = mean_loss(*merge_adapters_into_base(*m, ModelOptions{.method = "qlora"}), r);
  const double naive_tiles = mean_loss(*merge_adapters_into_base(*m, ModelOptions{.method = "qablora"}), r);
  std::printf("QA-BLoRA tiny-llama loss: base %.8f | adapter %.8f | merged 4-bit (zeros) %.8f (rel %.2e) | "
              "float merge -> NF4 %.8f (rel %.2e) | float merge -> asym4 tiles %.8f (rel %.2e)\n",
              base, adapter, exact, rel(exact, adapter), naive_nf4, rel(naive_nf4, adapter), naive_tiles,
              rel(naive_tiles, adapter));
  EXPECT_GT(rel(adapter, base), 1e-3);  // the adapter matters
  EXPECT_LT(rel(exact, adapter), 1e-5);
  EXPECT_GT(rel(naive_nf4, adapter), 1e-3);
}

// LoRA on the same 4-bit base has no tile structure: its float merge quantized
// again to the tiles moves the loss, and the zero fold refuses it.
TEST(QABlora, UnalignedLoraDoesNotMergeIntoTheTiles) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm, "lora");
  const double adapter = mean_loss(*m, r);
  const double requant = mean_loss(*merge_adapters_into_base(*m, ModelOptions{.method = "qablora"}), r);
  std::printf("LoRA on asym4 tiles: adapter %.8f | float merge -> asym4 tiles %.8f (rel %.2e)\n", adapter, requant,
              rel(requant, adapter));
  EXPECT_GT(rel(requant, adapter), 1e-4);
  EXPECT_THROW(merged_asym4_state(*m), Error);
}

TEST(QABlora, MergeKeepsEveryCodeAndScale) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm);
  auto merged = merge_qablora_4bit(*m, ModelOptions{});
  ASSERT_EQ(merged->linears().size(), m->linears().size());
  for (size_t k = 0; k < m->linears().size(); ++k) {
    const auto* a = dynamic_cast<const Asym4Weight*>(&m->linears()[k]->base());
    const auto* b = dynamic_cast<const Asym4Weight*>(&merged->linears()[k]->base());
    ASSERT_TRUE(a && b) << m->linears()[k]->name();
    EXPECT_EQ(merged->linears()[k]->adapter(), nullptr);
    EXPECT_EQ(a->codes().to_vector(), b->codes().to_vector());
    EXPECT_EQ(a->scale().to_vector(), b->scale().to_vector());
    EXPECT_NE(a->zero().to_vector(), b->zero().to_vector());
  }
}

TEST(QABlora, ExportedFourBitModelLoadsBack) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm);
  const std::string dir = ::testing::TempDir() + "/qablora_merged";
  std::filesystem::remove_all(dir);
  save_asym4_model(dir, merged_asym4_state(*m), fixture("tiny-llama"), m->config());
  LoadedModel back = load_hf_model_dir(dir);
  ModelOptions opt;
  opt.method = "qablora";
  opt.targets = {};
  auto mb = Model::create(back.config, *back.weights, opt);
  EXPECT_EQ(mean_loss(*mb, r), mean_loss(*merge_qablora_4bit(*m, ModelOptions{}), r));
  const auto file_bytes = std::filesystem::file_size(dir + "/model.safetensors");
  std::printf("merged 4-bit tiny-llama: %zu bytes\n", size_t(file_bytes));
  ModelOptions dense;
  dense.targets = {};
  EXPECT_THROW(Model::create(back.config, *back.weights, dense), Error);  // codes are not a float weight
}

TEST(QABlora, GradientMatchesFiniteDifferences) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm);
  mean_loss(*m, r, true);
  std::vector<std::vector<float>> grads;
  for (auto& p : m->params().params()) grads.push_back(p.grad.to_vector());
  int checked = 0;
  for (size_t j = 0; j < grads.size(); ++j) {
    Param& p = m->params().params()[j];
    if (p.name.find("layers.0.self_attn.q_proj") == std::string::npos &&
        p.name.find("layers.1.mlp.down_proj") == std::string::npos)
      continue;
    for (int64_t k : {int64_t(0), p.value.numel() / 2 + 1}) {
      const float g = grads[j][size_t(k)], v = p.value.f32()[k], h = 2e-2f;
      p.value.f32()[k] = v + h;
      const double up = mean_loss(*m, r);
      p.value.f32()[k] = v - h;
      const double down = mean_loss(*m, r);
      p.value.f32()[k] = v;
      EXPECT_NEAR(g, (up - down) / (2 * h), 2e-2 * std::fabs(g) + 2e-4) << p.name << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4);
}

TEST(QABlora, AdapterSavesAndReadsBack) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto m = trained_qablora(lm);
  const std::string dir = ::testing::TempDir() + "/qablora_adapter";
  std::filesystem::remove_all(dir);
  save_peft_adapter(dir, *m, "tiny-llama");
  PeftAdapter a = read_peft_adapter(dir);
  EXPECT_EQ(a.type, "qablora");
  EXPECT_EQ(a.lora.qablora_tile_out, 8);
  EXPECT_EQ(a.lora.qablora_tile_in, 4);
  ModelOptions opt;
  opt.method = "qablora";
  opt.adapter_type = a.type;
  opt.lora = a.lora;
  opt.targets = a.modules;
  auto m2 = Model::create(lm.config, *lm.weights, opt);
  apply_peft_adapter(*m2, a);
  EXPECT_EQ(mean_loss(*m2, r), mean_loss(*m, r));
  for (Linear* lin : m2->linears()) {
    auto* q = dynamic_cast<QABloraAdapter*>(lin->adapter());
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->H().shape, (Shape{lin->out() / 8, lin->in() / 4}));
  }
}

TEST(QABlora, FreshAdapterStartsAtTheBaseAndBadTilesAreUserErrors) {
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  ModelOptions opt, none;
  opt.method = none.method = "qablora";
  none.targets = {};
  EXPECT_EQ(mean_loss(*Model::create(lm.config, *lm.weights, opt), r),
            mean_loss(*Model::create(lm.config, *lm.weights, none), r));
  opt.lora.qablora_tile_out = 3;  // 64 rows are not 3-row tiles
  EXPECT_THROW(Model::create(lm.config, *lm.weights, opt), Error);
}

}  // namespace
}  // namespace qtrain::testing
