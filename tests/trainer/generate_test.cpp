// Generation on the CPU backend: greedy output equals HF generate(do_sample=False)
// token for token (tests/fixtures/generate-ref.json, made by
// make_generate_fixtures.py) for tiny GPT-2 and tiny LLaMA, with and without
// their LoRA adapter, unmerged and merged; decode's logits at every step; a
// chat's next turn that reuses the cache equals a fresh run; sampling is
// reproducible end to end; EOS ids from HF configs.
#include "trainer/generate.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "models/merged_model.h"
#include "models/peft_io.h"
#include "tests/generate_fixture.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

using testing::GreedyCase;
using testing::load_greedy_cases;
using testing::make_generate_model;

TEST(Generate, GreedyEqualsHfGenerate) {
  auto cases = load_greedy_cases();
  ASSERT_EQ(cases.size(), 8u);  // 2 models x 2 prompts x {base, LoRA}
  int eos_stops = 0;
  for (const GreedyCase& c : cases) {
    SCOPED_TRACE(c.label());
    auto m = make_generate_model(c.model, c.adapter, Device::CPU);
    GenerateOptions o;
    o.max_new_tokens = c.max_new_tokens;
    o.sampling.temperature = 0;
    o.stop_ids = hf_eos_ids(testing::fixture(c.model));
    ASSERT_EQ(o.stop_ids, std::vector<int32_t>{c.eos});
    Generator g(*m, o);
    std::vector<int32_t> streamed;
    GenerateResult r = g.generate(c.prompt, [&](int32_t id) { streamed.push_back(id); });
    EXPECT_EQ(r.ids, c.new_ids);
    EXPECT_EQ(r.stop, c.stopped_on_eos ? StopReason::StopToken : StopReason::MaxNewTokens);
    std::vector<int32_t> said = c.new_ids;
    if (c.stopped_on_eos) said.pop_back();  // the stop token is not streamed
    EXPECT_EQ(streamed, said);
    EXPECT_EQ(r.prompt_tokens, int(c.prompt.size()));
    EXPECT_EQ(r.prefilled, int(c.prompt.size()));
    EXPECT_EQ(r.decode_steps, int(r.ids.size()) - 1);
    eos_stops += c.stopped_on_eos;
  }
  EXPECT_GT(eos_stops, 0) << "no case stops on EOS: the stop path is untested";
}

// Model::decode's logits at every step (the prompt in one call, then HF's tokens
// one at a time) equal HF's for the largest few, to 1e-4: the KV cache holds the
// right keys and values even where greedy output repeats one token.
TEST(Generate, DecodeLogitsEqualHfAtEveryStep) {
  double worst = 0;  // largest |ours - HF| / max(1, |HF|)
  for (const GreedyCase& c : load_greedy_cases()) {
    SCOPED_TRACE(c.label());
    auto m = make_generate_model(c.model, c.adapter, Device::CPU);
    KvCache cache = m->new_kv_cache(1, int(c.prompt.size() + c.new_ids.size()));
    ASSERT_EQ(c.top.size(), c.new_ids.size());
    for (size_t step = 0; step < c.new_ids.size(); ++step) {
      Tensor logits = step == 0 ? m->decode(c.prompt.data(), 1, int(c.prompt.size()), cache)
                                : m->decode(&c.new_ids[step - 1], 1, 1, cache);
      ASSERT_EQ(cache.len, int(c.prompt.size() + step));
      const float* l = logits.f32();
      for (size_t k = 0; k < c.top[step].ids.size(); ++k) {
        float want = c.top[step].logits[k];
        EXPECT_NEAR(l[c.top[step].ids[k]], want, 1e-4 * std::max(1.f, std::abs(want)))
            << "step " << step << ", token " << c.top[step].ids[k];
        worst = std::max(worst, std::abs(double(l[c.top[step].ids[k]]) - want) / std::max(1.f, std::abs(want)));
      }
    }
  }
  std::printf("worst decode logit error vs HF: %.2e\n", worst);
}

// The adapter merged into the base (W + s*B*A) generates what HF's unmerged
// peft model does: the fixture's margins (> 0.04) dwarf the rounding of a merge.
TEST(Generate, MergedAdapterEqualsHfGenerate) {
  int checked = 0;
  for (const GreedyCase& c : load_greedy_cases()) {
    if (c.adapter.empty()) continue;
    SCOPED_TRACE(c.label());
    auto unmerged = make_generate_model(c.model, c.adapter, Device::CPU);
    auto m = merge_adapters_into_base(*unmerged, unmerged->options());
    EXPECT_EQ(m->trainable_params(), 0);
    Generator g(*m, greedy_options(c));
    EXPECT_EQ(g.generate(c.prompt).ids, c.new_ids);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

// A second call whose prompt extends what the cache holds runs only the new
// tokens, and gives what a fresh Generator gives for the whole prompt.
TEST(Generate, ReusedCacheEqualsAFreshRun) {
  auto cases = load_greedy_cases();
  for (const char* model : {"tiny-gpt2", "tiny-llama"}) {
    SCOPED_TRACE(model);
    const GreedyCase* c = nullptr;
    for (const auto& x : cases)
      if (x.model == model && x.adapter.empty() && !x.stopped_on_eos) c = &x;
    ASSERT_NE(c, nullptr);
    auto m = make_generate_model(c->model, "", Device::CPU);
    GenerateOptions o;
    o.max_new_tokens = 6;
    o.sampling.temperature = 0;
    Generator chat(*m, o);
    GenerateResult first = chat.generate(c->prompt);
    // The next turn: the history, the reply, and a few more "user" tokens.
    std::vector<int32_t> turn2 = c->prompt;
    turn2.insert(turn2.end(), first.ids.begin(), first.ids.end());
    turn2.insert(turn2.end(), {7, 11, 13});
    GenerateResult second = chat.generate(turn2);
    EXPECT_EQ(second.prefilled, 1 + 3) << "the last reply token and the new ones";
    // A turn that rewrites history (a shorter prompt that diverges) rolls the cache back.
    std::vector<int32_t> turn3(c->prompt.begin(), c->prompt.begin() + 3);
    turn3.push_back(5);
    GenerateResult third = chat.generate(turn3);
    EXPECT_EQ(third.prefilled, 1);

    auto fresh = make_generate_model(c->model, "", Device::CPU);
    Generator again(*fresh, o);
    EXPECT_EQ(again.generate(turn2).ids, second.ids);
    Generator again3(*fresh, o);
    EXPECT_EQ(again3.generate(turn3).ids, third.ids);
  }
}

TEST(Generate, SampledRunsRepeatWithTheSeed) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);
  auto run = [&](uint64_t seed) {
    GenerateOptions o;
    o.max_new_tokens = 24;
    o.sampling = {1.f, 0, 0.95f, seed};
    Generator g(*m, o);
    return g.generate(std::vector<int32_t>{1, 20, 30, 40}).ids;
  };
  auto a = run(3);
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a, run(3));
  EXPECT_NE(a, run(4));
}

TEST(Generate, StopsAtTheModelsLastPosition) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);  // 128 positions
  GenerateOptions o;
  o.max_new_tokens = 50;
  o.sampling.temperature = 0;
  Generator g(*m, o);
  std::vector<int32_t> prompt(120, 9);
  GenerateResult r = g.generate(prompt);
  // Positions 0..127 are fed; the token after the last one is still produced.
  EXPECT_EQ(r.stop, StopReason::Context);
  EXPECT_EQ(r.ids.size(), 128u - 120u + 1u);
}

TEST(Generate, BadPromptsAndOptionsAreErrors) {
  auto m = make_generate_model("tiny-llama", "", Device::CPU);
  GenerateOptions o;
  Generator g(*m, o);
  EXPECT_THROW(g.generate(std::vector<int32_t>{}), Error);
  EXPECT_THROW(g.generate(std::vector<int32_t>(129, 1)), Error);
  o.max_new_tokens = 0;
  EXPECT_THROW(Generator(*m, o), Error);
  o.max_new_tokens = 1;
  o.sampling.top_p = 0;
  EXPECT_THROW(Generator(*m, o), Error);
}

TEST(Generate, EosIdsFromHfConfigs) {
  EXPECT_EQ(hf_eos_ids(testing::fixture("tiny-gpt2")), std::vector<int32_t>{50256});
  EXPECT_EQ(hf_eos_ids(testing::fixture("tiny-llama")), std::vector<int32_t>{2});
  EXPECT_TRUE(hf_eos_ids(testing::fixture("gguf/tiny_llama.gguf")).empty());
  // Llama 3 style: a list in generation_config.json, one id in config.json.
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("qtrain_eos_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
  write("generation_config.json", R"({"eos_token_id": [128001, 128009], "bos_token_id": 128000})");
  write("config.json", R"({"eos_token_id": 128001})");
  EXPECT_EQ(hf_eos_ids(dir.string()), (std::vector<int32_t>{128001, 128009}));
  write("config.json", R"({"eos_token_id": null})");
  EXPECT_EQ(hf_eos_ids(dir.string()).size(), 2u);
  write("generation_config.json", R"({"eos_token_id": "</s>"})");
  try {
    hf_eos_ids(dir.string());
    ADD_FAILURE() << "a string eos_token_id was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generation_config.json: field 'eos_token_id'"), std::string::npos) << e.what();
  }
  write("generation_config.json", "{not json");
  EXPECT_THROW(hf_eos_ids(dir.string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qtrain
