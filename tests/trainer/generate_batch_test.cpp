// Batched generation (trainer/generate_batch.h) on the CPU backend: prompts of
// different lengths decoded together in one KV cache each get what they get
// alone: greedy, HF generate's tokens (tests/fixtures/generate-ref.json) with
// each row stopping on its own; sampled, a lone seeded run's tokens; a row that
// reaches the model's last position stops there while the others go on.
#include "trainer/generate_batch.h"

#include "kernels/error.h"
#include "tests/generate_fixture.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

using testing::GreedyCase;
using testing::load_greedy_cases;
using testing::make_generate_model;

TEST(GenerateBatch, GreedyRowsEqualHfGenerate) {
  const auto cases = load_greedy_cases();
  int pairs = 0, eos_rows = 0;
  // The fixture's prompts of one model and adapter (5 and 9 tokens), in both
  // orders and with a repeat, as one batch each.
  for (const auto& same : cases_by_model(cases)) {
    const GreedyCase& first = *same.front();
    ASSERT_EQ(same.size(), 2u);
    ASSERT_NE(same[0]->prompt.size(), same[1]->prompt.size()) << "the batch must mix prompt lengths";
    SCOPED_TRACE(first.label());
    auto m = make_generate_model(first.model, first.adapter, Device::CPU);
    const GenerateOptions o = greedy_options(first);
    for (const auto& order : std::vector<std::vector<int>>{{0, 1}, {1, 0, 1}}) {
      std::vector<std::vector<int32_t>> prompts;
      for (int i : order) prompts.push_back(same[size_t(i)]->prompt);
      std::vector<std::vector<int32_t>> streamed(order.size());
      BatchResult r = generate_batch(*m, o, prompts, [&](int row, int32_t id) { streamed[size_t(row)].push_back(id); });
      ASSERT_EQ(r.rows.size(), order.size());
      size_t shortest = std::min(same[0]->prompt.size(), same[1]->prompt.size());
      for (size_t b = 0; b < order.size(); ++b) {
        const GreedyCase& c = *same[size_t(order[b])];
        SCOPED_TRACE("row " + std::to_string(b) + ", prompt of " + std::to_string(c.prompt.size()));
        EXPECT_EQ(r.rows[b].ids, c.new_ids);
        EXPECT_EQ(r.rows[b].stop, c.stopped_on_eos ? StopReason::StopToken : StopReason::MaxNewTokens);
        std::vector<int32_t> said = c.new_ids;
        if (c.stopped_on_eos) said.pop_back();
        EXPECT_EQ(streamed[b], said);
        EXPECT_EQ(r.rows[b].prompt_tokens, int(c.prompt.size()));
        EXPECT_EQ(r.rows[b].prefilled, int(shortest));
        eos_rows += c.stopped_on_eos;
      }
      // Steps run until the longest-running row is done: its prompt past the
      // shortest plus its new tokens after the first.
      int steps = 0;
      for (size_t b = 0; b < order.size(); ++b)
        steps = std::max(steps, int(same[size_t(order[b])]->prompt.size() - shortest + r.rows[b].ids.size()) - 1);
      EXPECT_EQ(r.decode_steps, steps);
    }
    ++pairs;
  }
  EXPECT_EQ(pairs, 4);
  EXPECT_GT(eos_rows, 0) << "no row stops on EOS before the others: the per-row stop is untested";
}

// Each row draws from its own sampler seeded as a lone run's, so a sampled
// batch gives every prompt the tokens `generate` gives it alone.
TEST(GenerateBatch, SampledRowsEqualLoneRuns) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);
  GenerateOptions o;
  o.max_new_tokens = 16;
  o.sampling = {1.f, 0, 0.95f, 3};
  const std::vector<std::vector<int32_t>> prompts{{1, 20, 30, 40}, {1, 5}, {1, 7, 9, 11, 13, 17, 19}};
  BatchResult r = generate_batch(*m, o, prompts);
  std::vector<int32_t> all;
  for (size_t b = 0; b < prompts.size(); ++b) {
    Generator alone(*m, o);
    EXPECT_EQ(r.rows[b].ids, alone.generate(prompts[b]).ids) << "row " << b;
    all.insert(all.end(), r.rows[b].ids.begin(), r.rows[b].ids.end());
  }
  EXPECT_EQ(r.new_tokens(), int(all.size()));
  EXPECT_NE(r.rows[0].ids, r.rows[1].ids) << "rows drew the same tokens: the check above cannot tell rows apart";
}

TEST(GenerateBatch, ARowAtTheLastPositionStopsAlone) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);  // 128 positions
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.sampling.temperature = 0;
  const std::vector<std::vector<int32_t>> prompts{std::vector<int32_t>(120, 9), {1, 5, 9}};
  BatchResult r = generate_batch(*m, o, prompts);
  EXPECT_EQ(r.rows[0].stop, StopReason::Context);
  EXPECT_EQ(r.rows[0].ids.size(), 128u - 120u + 1u);
  EXPECT_EQ(r.rows[1].stop, StopReason::MaxNewTokens);
  EXPECT_EQ(r.rows[1].ids.size(), 12u);
  Generator alone(*m, o);
  EXPECT_EQ(r.rows[0].ids, alone.generate(prompts[0]).ids);
}

TEST(GenerateBatch, BadPromptsAreErrorsNamingTheRow) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);
  GenerateOptions o;
  EXPECT_THROW(generate_batch(*m, o, {}), Error);
  auto message = [&](const std::vector<std::vector<int32_t>>& p) {
    try {
      generate_batch(*m, o, p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{1, 2}, {}}).find("prompt 2 of the batch"), std::string::npos);
  EXPECT_NE(message({{1, 2}, std::vector<int32_t>(129, 1)}).find("128 positions"), std::string::npos);
  o.max_new_tokens = 0;
  EXPECT_NE(message({{1, 2}}).find("--max-new-tokens"), std::string::npos);
}

}  // namespace
}  // namespace qtrain
