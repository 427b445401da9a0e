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

TEST(GpuGenerate, GreedyEqualsHfGenerate) {
  QT_SKIP_WITHOUT_GPU();
  for (const GreedyCase& c : load_greedy_cases()) {
    SCOPED_TRACE(c.label());
    auto m = make_generate_model(c.model, c.adapter, Device::CUDA);
    GenerateOptions o;
    o.max_new_tokens = c.max_new_tokens;
    o.sampling.temperature = 0;
    o.stop_ids = {c.eos};
    Generator g(*m, o);
    GenerateResult r = g.generate(c.prompt);
    size_t sure = 0;  // steps whose HF margin a BF16 backend cannot flip
    while (sure < c.margins.size() && c.margins[sure] > kBf16Margin) ++sure;
    ASSERT_GE(r.ids.size(), sure);
    EXPECT_EQ(std::vector<int32_t>(r.ids.begin(), r.ids.begin() + long(sure)),
              std::vector<int32_t>(c.new_ids.begin(), c.new_ids.begin() + long(sure)));
    if (sure == c.margins.size()) EXPECT_EQ(r.ids, c.new_ids);
  }
}

// The fixture's two prompts of each model (5 and 9 tokens) decoded together
// in one KV cache of 2 rows (trainer/generate_batch.h): each row's steps run
// as one captured B = 2 graph, and each row gives HF's tokens where the margins allow.
TEST(GpuGenerate, BatchedRowsEqualHfGenerate) {
  QT_SKIP_WITHOUT_GPU();
  const auto cases = load_greedy_cases();
  int batches = 0;
  for (const GreedyCase& first : cases) {
    std::vector<const GreedyCase*> same;
    for (const GreedyCase& c : cases)
      if (c.model == first.model && c.adapter == first.adapter) same.push_back(&c);
    if (same.front() != &first) continue;
    SCOPED_TRACE(first.label());
    auto m = make_generate_model(first.model, first.adapter, Device::CUDA);
    GenerateOptions o;
    o.max_new_tokens = first.max_new_tokens;
    o.sampling.temperature = 0;
    o.stop_ids = {first.eos};
    std::vector<std::vector<int32_t>> prompts;
    for (const GreedyCase* c : same) prompts.push_back(c->prompt);
    BatchResult r = generate_batch(*m, o, prompts);
    EXPECT_EQ(m->decode_graph_status(), "graph");
    for (size_t b = 0; b < same.size(); ++b) {
      const GreedyCase& c = *same[b];
      size_t sure = 0;
      while (sure < c.margins.size() && c.margins[sure] > kBf16Margin) ++sure;
      ASSERT_GE(r.rows[b].ids.size(), sure) << "row " << b;
      EXPECT_EQ(std::vector<int32_t>(r.rows[b].ids.begin(), r.rows[b].ids.begin() + long(sure)),
                std::vector<int32_t>(c.new_ids.begin(), c.new_ids.begin() + long(sure)))
          << "row " << b;
      if (sure == c.margins.size()) EXPECT_EQ(r.rows[b].ids, c.new_ids) << "row " << b;
    }
    ++batches;
  }
  EXPECT_EQ(batches, 4);
}

}  // namespace
}  // namespace qtrain::testing
