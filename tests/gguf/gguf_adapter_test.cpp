// A llama.cpp LoRA adapter .gguf read back as a PEFT adapter (models/gguf_adapter.h):
// qtrain's own export round-trips bit for bit (the Q/K rows back in HF order);
// llama.cpp-style files with F16 tensors, mixed ranks and no alpha read as
// llama.cpp applies them; everything else is refused naming the file and tensor.
#include <unistd.h>

#include <cstdio>

#include "models/gguf_adapter.h"
#include "models/gguf_export.h"
#include "models/gguf_writer.h"
#include "kernels/dtype.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(::getpid()) + ".gguf";
}

const ModelConfig& tiny_config() {
  static const LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  return m.config;  // d 64, 4 heads / 2 kv of 16, ff 96, 2 layers
}

std::string peft_name(int layer, const std::string& module, const char* which) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + module + "." + which;
}

TEST(GgufAdapter, QtrainsExportReadsBackBitForBit) {
  const ModelConfig& c = tiny_config();
  const int r = 4;
  std::vector<std::pair<std::string, Tensor>> peft;
  const std::pair<const char*, std::pair<int, int>> mods[] = {
      {"self_attn.q_proj", {64, 64}}, {"self_attn.k_proj", {64, 32}}, {"mlp.down_proj", {96, 64}}};
  uint64_t seed = 7;
  for (int l = 0; l < c.n_layer; ++l)
    for (auto& [mod, io] : mods) {
      peft.emplace_back(peft_name(l, mod, "lora_A.weight"), testing::randn({r, io.first}, seed++));
      peft.emplace_back(peft_name(l, mod, "lora_B.weight"), testing::randn({io.second, r}, seed++));
    }
  const std::string path = tmp_path("adapter");
  export_gguf_lora(path, c, peft, 8.f, r);
  const PeftAdapter a = read_peft_adapter(path, &c);
  std::remove(path.c_str());
  EXPECT_EQ(a.type, "lora");
  EXPECT_EQ(a.lora.r, r);
  EXPECT_EQ(a.lora.alpha, 8.f);
  EXPECT_TRUE(a.lora.patterns.empty());
  EXPECT_EQ(a.modules.size(), size_t(c.n_layer) * 3);
  for (auto& [name, t] : peft) {
    SCOPED_TRACE(name);
    const Shape* s = a.tensors->shape(name);
    ASSERT_TRUE(s);
    EXPECT_EQ(*s, t.shape());
    EXPECT_EQ(a.tensors->load_f32(name).to_vector(), t.to_vector());  // q/k rows un-permuted exactly
  }
  EXPECT_THROW(read_peft_adapter(path, nullptr), Error);  // a .gguf adapter needs its model
}

// What llama.cpp's converter may write: F16 tensors, a rank per pair, no adapter.lora.alpha
// (llama.cpp then scales by 1, i.e. alpha = r for each pair).
TEST(GgufAdapter, MixedRanksF16AndNoAlphaReadAsLlamaCppAppliesThem) {
  const ModelConfig& c = tiny_config();
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", "lora");
  Tensor a0 = testing::randn({4, 64}, 1), b0 = testing::randn({64, 4}, 2);  // layer 0 o_proj, r 4
  Tensor a1 = testing::randn({4, 64}, 3), b1 = testing::randn({64, 4}, 4);  // layer 1 o_proj, r 4
  Tensor a2 = testing::randn({2, 64}, 5), b2 = testing::randn({96, 2}, 6);  // layer 0 up_proj, r 2
  w.add_tensor("blk.0.attn_output.weight.lora_a", a0, GgmlType::F16);
  w.add_tensor("blk.0.attn_output.weight.lora_b", b0, GgmlType::F16);
  w.add_tensor("blk.1.attn_output.weight.lora_a", a1, GgmlType::F16);
  w.add_tensor("blk.1.attn_output.weight.lora_b", b1, GgmlType::F16);
  w.add_tensor("blk.0.ffn_up.weight.lora_a", a2, GgmlType::F16);
  w.add_tensor("blk.0.ffn_up.weight.lora_b", b2, GgmlType::F16);
  const std::string path = tmp_path("mixed");
  w.write(path);
  const PeftAdapter a = read_peft_adapter(path, &c);
  std::remove(path.c_str());
  EXPECT_EQ(a.lora.r, 4);
  EXPECT_EQ(a.lora.alpha, 4.f);
  ASSERT_EQ(a.lora.patterns.rank.size(), 1u);
  EXPECT_EQ(a.lora.patterns.rank[0], (std::pair<std::string, int>{"model.layers.0.mlp.up_proj", 2}));
  ASSERT_EQ(a.lora.patterns.alpha.size(), 1u);
  EXPECT_EQ(a.lora.patterns.alpha[0].second, 2.f);  // scale 1 for the rank-2 pair too
  const std::vector<float> got = a.tensors->load_f32(peft_name(0, "mlp.up_proj", "lora_B.weight")).to_vector();
  const std::vector<float> want = b2.to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], f16_to_f32(f32_to_f16(want[i])));
}

TEST(GgufAdapter, RefusesWhatIsNotAFittingLoraAdapter) {
  const ModelConfig& c = tiny_config();
  auto expect_error = [&](const GgufWriter& w, const std::string& what) {
    const std::string path = tmp_path("bad");
    w.write(path);
    try {
      read_peft_adapter(path, &c);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    std::remove(path.c_str());
  };
  auto adapter = [] {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.type", "adapter");
    w.set_string("adapter.type", "lora");
    return w;
  };
  GgufWriter model;
  model.set_string("general.architecture", "llama");
  expect_error(model, "general.type is not set");
  GgufWriter cvec = adapter();
  cvec.set_string("adapter.type", "control_vector");
  expect_error(cvec, "adapter.type is 'control_vector'");
  GgufWriter half = adapter();
  half.add_tensor("blk.0.attn_q.weight.lora_a", testing::randn({4, 64}, 1));
  expect_error(half, "has no lora_b");
  GgufWriter foreign = adapter();
  foreign.add_tensor("token_embd.weight.lora_a", testing::randn({4, 64}, 1));
  expect_error(foreign, "token_embd.weight.lora_a");
  GgufWriter ranks = adapter();
  ranks.add_tensor("blk.0.attn_v.weight.lora_a", testing::randn({4, 64}, 1));
  ranks.add_tensor("blk.0.attn_v.weight.lora_b", testing::randn({32, 3}, 2));
  expect_error(ranks, "rank 4");
  GgufWriter heads = adapter();  // q rows that are no whole number of this model's 4 heads
  heads.add_tensor("blk.0.attn_q.weight.lora_a", testing::randn({4, 64}, 1));
  heads.add_tensor("blk.0.attn_q.weight.lora_b", testing::randn({66, 4}, 2));
  expect_error(heads, "another model");
  GgufWriter empty = adapter();
  expect_error(empty, "no LoRA tensors");
}

}  // namespace
}  // namespace qtrain
