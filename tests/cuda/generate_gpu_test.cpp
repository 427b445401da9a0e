// Greedy generation on --device cuda (BF16 activations and KV cache) against
// HF generate(do_sample=False) (tests/fixtures/generate-ref.json). The fixture's
// prompts keep every step's top-2 logit margin above 0.04, beyond the BF16
// error of these tiny models, so the tokens must match exactly; a step below
// kBf16Margin (should the fixture change) ends the comparison there, since one
// flipped near-tie changes every later token.
#include "tests/cuda/cuda_test_util.h"
#include "tests/generate_fixture.h"
#include "trainer/generate.h"
#include "trainer/generate_batch.h"

namespace qtrain::testing {
namespace {

constexpr double kBf16Margin = 0.04;

// ids equal HF's new tokens for every step whose margin a BF16 backend cannot
// flip, and all of them when no step is that close.
void expect_hf_tokens(const std::vector<int32_t>& ids, const GreedyCase& c) {
  size_t sure = 0;
  while (sure < c.margins.size() && c.margins[sure] > kBf16Margin) ++sure;
  ASSERT_GE(ids.size(), sure);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + long(sure)),
            std::vector<int32_t>(c.new_ids.begin(), c.new_ids.begin() + long(sure)));
  if (sure == c.margins.size()) EXPECT_EQ(ids, c.new_ids);
}

TEST(GpuGenerate, GreedyEqualsHfGenerate) {
  QT_SKIP_WITHOUT_GPU();
  for (const GreedyCase& c : load_greedy_cases()) {
    SCOPED_TRACE(c.label());
    auto m = make_generate_model(c.model, c.adapter, Device::CUDA);
    Generator g(*m, greedy_options(c));
    expect_hf_tokens(g.generate(c.prompt).ids, c);
  }
}

// The fixture's two prompts of each model (5 and 9 tokens) decoded together
// in one KV cache of 2 rows (trainer/generate_batch.h): each row's steps run
// as one captured B = 2 graph, and each row gives HF's tokens where the margins allow.
TEST(GpuGenerate, BatchedRowsEqualHfGenerate) {
  QT_SKIP_WITHOUT_GPU();
  const auto cases = load_greedy_cases();
  int batches = 0;
  for (const auto& same : cases_by_model(cases)) {
    const GreedyCase& first = *same.front();
    SCOPED_TRACE(first.label());
    auto m = make_generate_model(first.model, first.adapter, Device::CUDA);
    std::vector<std::vector<int32_t>> prompts;
    for (const GreedyCase* c : same) prompts.push_back(c->prompt);
    BatchResult r = generate_batch(*m, greedy_options(first), prompts);
    EXPECT_EQ(m->decode_graph_status(), "graph");
    for (size_t b = 0; b < same.size(); ++b) {
      SCOPED_TRACE("row " + std::to_string(b));
      expect_hf_tokens(r.rows[b].ids, *same[b]);
    }
    ++batches;
  }
  EXPECT_EQ(batches, 4);
}

}  // namespace
}  // namespace qtrain::testing
