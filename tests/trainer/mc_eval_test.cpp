// Multiple-choice eval against its PyTorch re-implementation
// (tests/fixtures/make_mc_fixtures.py -> mc/tiny-gpt2-mc-ref.json): the same
// prompts (shots dropped for length, one prompt cut), per-choice letter
// log-likelihoods within 1e-4, and the same predictions, base and with LoRA.
#include <fstream>
#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "models/peft_io.h"
#include "models/weight_source.h"
#include "tests/test_util.h"
#include "trainer/mc_eval.h"
#include "trainer/setup.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

nlohmann::json reference() {
  return fixture_json("mc/tiny-gpt2-mc-ref.json");
}

struct Fixture {
  LoadedModel lm = load_hf_model_dir(fixture("tiny-gpt2"));
  // tiny-gpt2 uses the real GPT-2 BPE, kept once in ../shared (see tests/fixtures/README.md).
  std::shared_ptr<const Tokenizer> tok = make_tokenizer(lm.tokenizer, shared_dir() + "/data/gpt2-tokenizer", "tiny-gpt2");

  std::unique_ptr<Model> model(bool lora) {
    ModelOptions opt;
    std::unique_ptr<PeftAdapter> adapter;
    if (lora) {
      adapter = std::make_unique<PeftAdapter>(read_peft_adapter(fixture("tiny-gpt2-lora")));
      opt.lora = adapter->lora;
      opt.targets = adapter->modules;
    } else {
      opt.targets = {};
    }
    auto m = Model::create(lm.config, *lm.weights, opt);
    if (adapter) apply_peft_adapter(*m, *adapter);
    return m;
  }
};

McOptions options(const nlohmann::json& ref, int batch_size) {
  McOptions o;
  o.shots = ref["shots"];
  o.max_tokens = ref["seq_len"];
  o.batch_size = batch_size;
  return o;
}

void expect_matches(const McResult& r, const nlohmann::json& want, const std::string& what) {
  ASSERT_EQ(r.scores.size(), want.size()) << what;
  int64_t correct = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& w = want[i];
    const McScore& s = r.scores[i];
    EXPECT_EQ(s.shots, w["shots"].get<int>()) << what << " question " << i;
    EXPECT_EQ(s.cut, w["cut"].get<bool>()) << what << " question " << i;
    ASSERT_EQ(s.loglik.size(), w["loglik"].size()) << what << " question " << i;
    for (size_t c = 0; c < s.loglik.size(); ++c)
      EXPECT_NEAR(s.loglik[c], w["loglik"][c].get<double>(), 1e-4) << what << " question " << i << " choice " << c;
    EXPECT_EQ(s.pred, w["pred"].get<int>()) << what << " question " << i;
    correct += w["pred"] == w["answer"];
  }
  EXPECT_EQ(r.correct, correct) << what;
  EXPECT_EQ(r.n, int64_t(want.size())) << what;
}

}  // namespace

TEST(McPrompt, ReadsTheMmluFormatAndBuildsItsPrompt) {
  auto ref = reference();
  McSet set = read_mc_questions(fixture("mc/questions.jsonl"), "");
  ASSERT_EQ(set.questions.size(), ref["base"].size());  // dev and validation rows are not scored
  EXPECT_EQ(set.dev["python_builtins"].size(), 3u);
  EXPECT_EQ(set.questions[1].answer, 2);  // "C"
  EXPECT_EQ(set.questions[2].answer, 1);  // "b", of 3 choices
  const auto& dev = set.dev["python_builtins"];
  EXPECT_EQ(mc_prompt_text(set.questions[0], {&dev[0], &dev[1], &dev[2]}), ref["first_prompt"].get<std::string>());
  // --split validation scores the validation row instead of the test one (and the rows without a split).
  McSet val = read_mc_questions(fixture("mc/questions.jsonl"), "", "validation");
  ASSERT_EQ(val.questions.size(), set.questions.size());
  EXPECT_EQ(val.questions[3].question, "Scored only with --split validation");
  EXPECT_EQ(val.questions[1].question, set.questions[2].question);  // the test row (round) is gone
}

TEST(McPrompt, DevFileGivesTheSameShotsAsDevRows) {
  McSet a = read_mc_questions(fixture("mc/questions.jsonl"), "");
  McSet b = read_mc_questions(fixture("mc/questions.jsonl"), fixture("mc/dev.jsonl"));
  ASSERT_EQ(a.questions.size(), b.questions.size());
  ASSERT_EQ(a.dev.size(), b.dev.size());
  for (const auto& [subject, rows] : a.dev) {
    ASSERT_EQ(rows.size(), b.dev[subject].size()) << subject;
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].question, b.dev[subject][i].question);
  }
}

TEST(McPrompt, DropsShotsFromTheLastThenCutsFromTheLeft) {
  Fixture fx;
  McSet set = read_mc_questions(fixture("mc/questions.jsonl"), "");
  const McQuestion& q = set.questions[0];
  McPrompt all = build_mc_prompt(*fx.tok, set, q, 3, 100000);
  EXPECT_EQ(all.shots, 3);
  EXPECT_FALSE(all.cut);
  McPrompt fit = build_mc_prompt(*fx.tok, set, q, 3, int(all.ids.size()) - 1);
  EXPECT_EQ(fit.shots, 2);
  McPrompt none = build_mc_prompt(*fx.tok, set, q, 3, 10);
  EXPECT_EQ(none.shots, 0);
  EXPECT_TRUE(none.cut);
  ASSERT_EQ(none.ids.size(), 10u);
  // The kept end is the end of the zero-shot prompt: "...Answer:".
  auto zero = fx.tok->encode(mc_prompt_text(q, {}));
  EXPECT_TRUE(std::equal(none.ids.begin(), none.ids.end(), zero.end() - 10));
}

TEST(McPrompt, BadRowsNameTheLineAndField) {
  const std::string dir = ::testing::TempDir();
  auto expect_error = [&](const std::string& row, const std::string& needle) {
    const std::string path = dir + "/mc_bad.jsonl";
    std::ofstream(path) << R"({"question": "ok", "choices": ["a", "b"], "answer": 0, "subject": "s"})" << "\n"
                        << row << "\n";
    try {
      read_mc_questions(path, "");
      ADD_FAILURE() << "no error for " << row;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + ":2"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"choices": ["a", "b"], "answer": 0, "subject": "s"})", "'question'");
  expect_error(R"({"question": "q", "choices": ["a"], "answer": 0, "subject": "s"})", "'choices'");
  expect_error(R"({"question": "q", "choices": ["a", 3], "answer": 0, "subject": "s"})", "'choices'");
  expect_error(R"({"question": "q", "choices": ["a", "b"], "answer": 2, "subject": "s"})", "'answer'");
  expect_error(R"({"question": "q", "choices": ["a", "b"], "answer": "C", "subject": "s"})", "'answer'");
  expect_error(R"({"question": "q", "choices": ["a", "b"], "answer": 0})", "'subject'");
  expect_error(R"({"question": "q", "choices": ["a", "b"], "answer": 0, "subject": "s", "split": 1})", "'split'");
  expect_error(R"({"question": "q",)", "not valid JSON");
}

TEST(McEval, MatchesPyTorchBaseAndLora) {
  auto ref = reference();
  Fixture fx;
  McSet set = read_mc_questions(fixture("mc/questions.jsonl"), "");
  SingleCommunicator comm;
  for (bool lora : {false, true}) {
    auto m = fx.model(lora);
    // One prompt per forward, all in one padded batch, and each as a KV-cache
    // prefill (a logits budget below one row): the same scores.
    for (int bs : {1, 8, 0}) {
      McOptions o = options(ref, std::max(bs, 1));
      if (bs == 0) o.logits_budget = 1;
      McResult r = evaluate_mc(*m, *fx.tok, set, o, comm);
      expect_matches(r, ref[lora ? "lora" : "base"],
                     std::string(lora ? "lora" : "base") + (bs ? " batch " + std::to_string(bs) : " prefill"));
    }
  }
}

TEST(McEval, CountsTruncationAndSubjects) {
  auto ref = reference();
  Fixture fx;
  McSet set = read_mc_questions(fixture("mc/questions.jsonl"), "");
  SingleCommunicator comm;
  auto m = fx.model(false);
  const McOptions o = options(ref, 4);
  McResult r = evaluate_mc(*m, *fx.tok, set, o, comm);
  int64_t fewer = 0, dropped = 0, cut = 0;
  for (const auto& w : ref["base"]) {
    const int available = std::min<int>(o.shots, int(set.dev[w["subject"].get<std::string>()].size()));
    fewer += w["shots"].get<int>() < available;
    dropped += available - w["shots"].get<int>();
    cut += w["cut"].get<bool>();
  }
  EXPECT_GT(fewer, 0);
  EXPECT_EQ(cut, 1);
  EXPECT_EQ(r.shortened, fewer);
  EXPECT_EQ(r.shots_dropped, dropped);
  EXPECT_EQ(r.cut, cut);
  // python_modules has 1 dev example, python_syntax none.
  EXPECT_EQ(r.short_dev, (std::vector<std::string>{"python_modules", "python_syntax"}));
  auto j = r.to_json(o);
  EXPECT_EQ(j["n"], 8);
  EXPECT_EQ(j["subjects"]["python_builtins"]["n"], 4);
  EXPECT_EQ(j["truncated"]["prompts_cut"], 1);
  EXPECT_NEAR(j["accuracy"].get<double>(), ref["base_accuracy"].get<double>(), 1e-12);
}
