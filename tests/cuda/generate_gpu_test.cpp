// Greedy generation on --device cuda (BF16 activations and KV cache) against
// HF generate(do_sample=False) (tests/fixtures/generate-ref.json). The fixture's
// prompts keep every step's top-2 logit margin above 0.04, beyond the BF16
// error of these tiny models, so the tokens must match exactly; a step below
// kBf16Margin (should the fixture change) ends the comparison there, since one
// flipped near-tie changes every later token.
#include "tests/cuda/cuda_test_util.h"
#include "tests/generate_fixture.h"
#include "trainer/generate.h"

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

}  // namespace
}  // namespace qtrain::testing
