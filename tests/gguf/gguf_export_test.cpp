// LoRA adapter and merged-model GGUF export, read back with qtrain's reader:
// llama.cpp's metadata, names, ne order, and the Q/K permutation of lora_b.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "models/gguf_export.h"
#include "models/gguf_file.h"
#include "models/gguf_llama_names.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(::getpid()) + ".gguf";
}

std::vector<float> data_f32(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  EXPECT_TRUE(t) << name;
  if (!t) return {};
  EXPECT_EQ(t->type, GgmlType::F32);
  std::vector<float> v(size_t(t->numel()));
  std::memcpy(v.data(), f.tensor_data(*t), v.size() * 4);
  return v;
}

TEST(GgufExport, LoraAdapterLayoutMatchesLlamaCpp) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  const ModelConfig& c = m.config;  // d 64, 4 heads / 2 kv of 16, ff 96
  const int r = 4;
  std::vector<std::pair<std::string, Tensor>> peft;
  const std::pair<const char*, std::pair<int, int>> mods[] = {
      {"self_attn.q_proj", {64, 64}}, {"self_attn.k_proj", {64, 32}}, {"self_attn.v_proj", {64, 32}},
      {"self_attn.o_proj", {64, 64}}, {"mlp.gate_proj", {64, 96}},    {"mlp.down_proj", {96, 64}}};
  uint64_t seed = 1;
  for (int l = 0; l < c.n_layer; ++l)
    for (auto& [mod, io] : mods) {
      const std::string p = "base_model.model.model.layers." + std::to_string(l) + "." + mod;
      peft.emplace_back(p + ".lora_A.weight", testing::randn({r, io.first}, seed++));
      peft.emplace_back(p + ".lora_B.weight", testing::randn({io.second, r}, seed++));
    }
  const std::string out = tmp_path("lora");
  export_gguf_lora(out, c, peft, 8.f, r);
  GgufFile f(out);
  EXPECT_EQ(f.get_string("general.type"), "adapter");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  EXPECT_EQ(f.get_float("adapter.lora.alpha"), 8.0);
  EXPECT_EQ(f.tensors().size(), peft.size());

  for (size_t k = 0; k < peft.size(); k += 2) {
    const std::string module = peft[k].first.substr(17, peft[k].first.find(".lora_A.") - 17);
    const std::string base = hf_to_gguf_llama_name(module + ".weight");
    SCOPED_TRACE(base);
    const GgufTensorInfo* a = f.find_tensor(base + ".lora_a");
    const GgufTensorInfo* b = f.find_tensor(base + ".lora_b");
    ASSERT_TRUE(a && b);
    // llama-adapter.cpp: model.ne[0] == a.ne[0], model.ne[1] == b.ne[1], a.ne[1] == b.ne[0]
    const Shape w = m.weights->shape(module + ".weight");  // HF [out, in]
    EXPECT_EQ(a->ne, (std::vector<int64_t>{w[1], r}));
    EXPECT_EQ(b->ne, (std::vector<int64_t>{r, w[0]}));
    EXPECT_EQ(data_f32(f, base + ".lora_a"), peft[k].second.to_vector());
    std::vector<float> want_b = peft[k + 1].second.to_vector(), got_b = data_f32(f, base + ".lora_b");
    const int heads = rope_permuted_heads(module + ".weight", c.n_head, c.n_kv_head);
    for (int64_t row = 0; row < w[0]; ++row) {
      const int64_t stored = heads ? rope_permuted_row(row, w[0], heads) : row;
      for (int j = 0; j < r; ++j) ASSERT_EQ(got_b[size_t(stored * r + j)], want_b[size_t(row * r + j)]);
    }
    if (heads) EXPECT_NE(got_b, want_b);  // the permutation did something
  }
  // QTRAIN_KEEP_EXPORTS=dir keeps the adapter, to check it with gguf-py / llama.cpp by hand.
  if (const char* keep = std::getenv("QTRAIN_KEEP_EXPORTS")) {
    std::rename(out.c_str(), (std::string(keep) + "/tiny_lora.gguf").c_str());
  }
  std::remove(out.c_str());
}

TEST(GgufExport, LoraRejectsUnpairedOrForeignTensors) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  const std::string out = tmp_path("bad_lora");
  std::vector<std::pair<std::string, Tensor>> half = {
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", testing::randn({4, 64}, 1)}};
  EXPECT_THROW(export_gguf_lora(out, m.config, half, 8.f, 4), Error);
  std::vector<std::pair<std::string, Tensor>> foreign = {
      {"base_model.model.model.layers.0.self_attn.rotary.lora_A.weight", testing::randn({4, 64}, 1)}};
  EXPECT_THROW(export_gguf_lora(out, m.config, foreign, 8.f, 4), Error);
}

TEST(GgufExport, MergedModelRoundTrips) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& n : m.weights->names()) tensors.emplace_back(n, m.weights->load_f32(n));
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(type));
    const std::string out = tmp_path("merged");
    export_gguf_model(out, m.config, m.tokenizer, tensors, type);
    LoadedModel back = load_gguf_model(out);
    EXPECT_EQ(back.config.n_layer, m.config.n_layer);
    EXPECT_EQ(back.config.n_kv_head, m.config.n_kv_head);
    EXPECT_FLOAT_EQ(back.config.rope_theta, m.config.rope_theta);
    EXPECT_EQ(back.tokenizer.tokens, m.tokenizer.tokens);
    EXPECT_EQ(back.tokenizer.merges, m.tokenizer.merges);
    EXPECT_EQ(back.tokenizer.chat_template, m.tokenizer.chat_template);
    EXPECT_EQ(back.weights->names(), m.weights->names());
    for (auto& [n, t] : tensors) {
      std::vector<float> got = back.weights->load_f32(n).to_vector(), want = t.to_vector();
      if (type == GgmlType::F32 || t.ndim() == 1) EXPECT_EQ(got, want) << n;
      else EXPECT_LT(testing::norm_rel_err(got, want), 1e-2) << n;  // Q8_0 rounding, rows in place
    }
    std::remove(out.c_str());
  }
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.u != b.u || a.i != b.i || a.f != b.f || a.b != b.b || a.s != b.s ||
      a.arr.size() != b.arr.size())
    return false;
  for (size_t k = 0; k < a.arr.size(); ++k)
    if (!same_value(a.arr[k], b.arr[k])) return false;
  return true;
}

// Keys of a GGUF base the merge does not set (SmolLM2's add_bos_token = false,
// add_space_prefix, unknown_token_id, general.type were dropped before) come
// through with their values; the ones it sets are its own.
TEST(GgufExport, MergedModelKeepsTheBasesMetadata) {
  const std::string src = testing::fixture("gguf/tiny_llama.gguf");
  LoadedModel m = load_gguf_model(src);
  std::vector<std::pair<std::string, GgufValue>> meta = GgufFile(src).metadata();
  meta.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::of_bool(false));
  meta.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(false));
  meta.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::of_int(GgufValueType::U32, 3));
  meta.emplace_back("general.type", GgufValue::of_string("model"));
  meta.emplace_back("general.alignment", GgufValue::of_int(GgufValueType::U32, 64));  // the base file's, not the output's
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& n : m.weights->names()) tensors.emplace_back(n, m.weights->load_f32(n));
  const std::string out = tmp_path("merged_meta");
  export_gguf_model(out, m.config, m.tokenizer, tensors, GgmlType::F32, "qtrain-merged", meta);
  GgufFile back(out);
  std::map<std::string, const GgufValue*> got;
  for (const auto& [k, v] : back.metadata()) got[k] = &v;
  int kept = 0;
  for (const auto& [k, v] : meta) {
    if (k == "general.alignment") {
      EXPECT_FALSE(got.count(k)) << k;
      continue;
    }
    ASSERT_TRUE(got.count(k)) << "lost " << k;
    if (k == "general.name" || k == "general.file_type") continue;  // the merge's own
    EXPECT_TRUE(same_value(*got[k], v)) << "changed " << k;
    ++kept;
  }
  EXPECT_GE(kept, 5);
  EXPECT_EQ(got["general.name"]->s, "qtrain-merged");
  EXPECT_EQ(load_gguf_model(out).tokenizer.tokens, m.tokenizer.tokens);  // still a loadable model
  std::remove(out.c_str());
}

}  // namespace
}  // namespace qtrain
