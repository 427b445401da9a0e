// Incremental decoding with a KV cache computes what the full forward does:
// the logits of every position, prefilled or decoded one token at a time,
// equal the full forward's (CPU reference, fp32) on both architectures, on a
// dense and a quantized base, with an adapter that changes the output.
#include <gtest/gtest.h>

#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

class DecodeStep : public ::testing::TestWithParam<std::tuple<std::string, std::string, int>> {};

TEST_P(DecodeStep, EqualsFullForwardOnCpu) {
  auto [model, method, prefill] = GetParam();
  DecodeVsForward r = decode_vs_forward(model, method, Device::CPU, prefill);
  ASSERT_EQ(r.full.size(), r.decoded.size());
  EXPECT_LT(norm_rel_err(r.decoded, r.full), 1e-5);
  EXPECT_LT(max_rel_err(r.decoded, r.full, 1e-2), 5e-4);
}

INSTANTIATE_TEST_SUITE_P(Models, DecodeStep,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-gpt2"),
                                            ::testing::Values("lora", "qlora"), ::testing::Values(1, 5)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_prefill" +
                                           std::to_string(std::get<2>(info.param));
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(DecodeStep, RefusesPastTheCache) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-gpt2"));
  ModelOptions opt;
  auto m = Model::create(lm.config, *lm.weights, opt);
  KvCache c = m->new_kv_cache(1, 4);
  std::vector<int32_t> ids{1, 2, 3, 4, 5};
  EXPECT_THROW(m->decode(ids.data(), 1, 5, c), Error);
  m->decode(ids.data(), 1, 4, c);
  EXPECT_EQ(c.len, 4);
  EXPECT_THROW(m->decode(ids.data(), 1, 1, c), Error);
  // GPT-2's learned positions bound the cache.
  EXPECT_THROW(m->new_kv_cache(1, lm.config.max_pos + 1), Error);
}

// A one-token GPU step reads the factors an adapter names as BF16 views
// (Adapter::decode_factors): LoRA's A and B, of every adapted Linear in layer
// order; none for adapters that read theirs outside products, and none
// without adapters. (The GPU test decode_graph_test compares the numbers.)
TEST(DecodeFactors, LoraNamesItsFactorsOtherAdaptersNone) {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  auto build = [&](const std::string& method, const std::string& type) {
    ModelOptions opt;
    opt.method = method;
    opt.adapter_type = type;
    return Model::create(lm.config, *lm.weights, opt);
  };
  for (bool rslora : {false, true}) {
    ModelOptions opt;
    opt.lora.rslora = rslora;
    auto m = Model::create(lm.config, *lm.weights, opt);
    std::vector<Param*> f = m->decode_factors();
    std::vector<std::string> want;
    for (const Linear* l : m->linears())
      if (auto* a = dynamic_cast<LoraAdapter*>(l->adapter())) want.insert(want.end(), {a->A().name, a->B().name});
    ASSERT_FALSE(want.empty());
    ASSERT_EQ(f.size(), want.size());
    for (size_t i = 0; i < f.size(); ++i) {
      EXPECT_EQ(f[i]->name, want[i]);
      EXPECT_TRUE(f[i]->name.ends_with(i % 2 ? ".lora_B.weight" : ".lora_A.weight")) << f[i]->name;
    }
  }
  for (auto [method, type] : std::vector<std::pair<std::string, std::string>>{
           {"dora", ""}, {"ia3", ""}, {"qblora", ""}, {"qablora", ""}, {"full", ""}, {"qlora", "dora"}}) {
    auto m = build(method, type);
    EXPECT_TRUE(m->decode_factors().empty()) << method << " " << type;
  }
}

}  // namespace
}  // namespace qtrain::testing
