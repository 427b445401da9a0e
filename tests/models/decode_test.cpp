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

}  // namespace
}  // namespace qtrain::testing
