// Settings that would train garbage are refused naming the flag; a
// checkpoint's config round-trips, and --resume DIR alone restores it with
// the options given beside it taking precedence.
#include "trainer/train_config.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "kernels/error.h"
#include "tests/test_util.h"
#include "trainer/checkpoint.h"
#include "trainer/resume_config.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

TrainConfig ok_config() {
  TrainConfig c;
  c.model = "m";
  c.data = "d";
  c.steps = 10;
  return c;
}

std::string rejection(const std::function<void(TrainConfig&)>& change) {
  TrainConfig c = ok_config();
  change(c);
  try {
    validate(c);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainConfig, RefusesSettingsThatTrainGarbage) {
  EXPECT_EQ(rejection([](TrainConfig&) {}), "");
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* flag;
    std::function<void(TrainConfig&)> change;
  } cases[] = {
      {"--lr", [](TrainConfig& c) { c.lr = -1; }},
      {"--lr", [](TrainConfig& c) { c.lr = 0; }},
      {"--lr", [&](TrainConfig& c) { c.lr = inf; }},
      {"--lr", [](TrainConfig& c) { c.lr = std::nan(""); }},
      {"--warmup", [](TrainConfig& c) { c.warmup = 10; }},
      {"--warmup", [](TrainConfig& c) { c.warmup = -1; }},
      {"--save-every", [](TrainConfig& c) { c.save_every = -1; }},
      {"--clip", [](TrainConfig& c) { c.clip = -1; }},
      {"--clip", [](TrainConfig& c) { c.clip = std::nan(""); }},
      {"--steps", [](TrainConfig& c) { c.steps = -3; }},
      {"--eval-every", [](TrainConfig& c) { c.eval_every = -1; }},
      {"--keep-checkpoints", [](TrainConfig& c) { c.keep_checkpoints = 0; }},
      {"--on-nonfinite", [](TrainConfig& c) { c.on_nonfinite = "ignore"; }},
      {"--lora-dropout", [](TrainConfig& c) { c.lora_dropout = 1; }},
      {"--model", [](TrainConfig& c) { c.model.clear(); }},
  };
  for (const auto& k : cases) {
    std::string msg = rejection(k.change);
    EXPECT_NE(msg.find(k.flag), std::string::npos) << k.flag << ": '" << msg << "'";
  }
  // Epoch-sized runs (steps 0) check warmup once the step count is known.
  EXPECT_EQ(rejection([](TrainConfig& c) { c.steps = 0, c.warmup = 100; }), "");
}

TEST(TrainConfig, SeqLenAboveTheModelsPositionsIsRefused) {
  TrainConfig c = ok_config();
  c.seq_len = 2048;
  EXPECT_NO_THROW(check_seq_len(c, 0, "m"));     // no limit known
  EXPECT_NO_THROW(check_seq_len(c, 2048, "m"));
  try {
    check_seq_len(c, 1024, "tiny-gpt2");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--seq-len 2048 exceeds the 1024 positions of tiny-gpt2"), std::string::npos)
        << e.what();
  }
}

TEST(TrainConfig, JsonRoundTrip) {
  TrainConfig c = ok_config();
  c.lr = 3e-3;
  c.target = {"q_proj", "v_proj"};
  c.pack = false;
  c.seed = 1234567890123ull;
  c.keep_checkpoints = 4;
  TrainConfig back;
  from_json(to_json(c), back);
  EXPECT_EQ(to_json(back), to_json(c));
}

TEST(ResumeConfig, ResumeAloneRestoresTheCheckpointsConfigAndGivenOptionsOverride) {
  const fs::path out = fs::temp_directory_path() / ("qtrain_resume_cfg_" + std::to_string(getpid()));
  fs::remove_all(out);
  TrainConfig orig = ok_config();
  orig.lr = 5e-3;
  orig.batch_size = 2;
  orig.target = {"q_proj"};
  orig.save_every = 7;
  CheckpointState st;
  st.step = 3;
  st.config = to_json(orig);
  save_checkpoint((out / "checkpoint").string(), st);

  TrainConfig cli;  // `qtrain train --resume OUT` and nothing else
  cli.resume = out.string();
  TrainConfig m = merge_resume_config(cli, {"resume"});
  EXPECT_EQ(to_json(m), to_json(orig));
  EXPECT_EQ(m.out, out.string()) << "--out defaults to the resumed run's folder";

  cli.lr = 1e-3;  // --resume OUT --lr 1e-3
  cli.out = "elsewhere";
  m = merge_resume_config(cli, {"resume", "lr", "out"});
  EXPECT_EQ(m.lr, 1e-3);
  EXPECT_EQ(m.batch_size, 2);
  EXPECT_EQ(m.out, "elsewhere");

  cli.resume = (out / "nothing-here").string();
  EXPECT_THROW(merge_resume_config(cli, {"resume"}), Error);
  fs::remove_all(out);
}

TEST(ResumeConfig, CheckpointConfigHoldsAbsolutePathsForExistingFiles) {
  testing::TempDir t;
  const fs::path cwd = fs::current_path();
  fs::current_path(t.path);
  std::ofstream("data.jsonl") << "{}\n";
  TrainConfig c = ok_config();
  c.data = "data.jsonl";
  c.model = "smollm2-135m";  // a registered name, not a file here: kept as given
  nlohmann::json j = checkpoint_config(c);
  fs::current_path(cwd);
  EXPECT_EQ(j["data"], (fs::canonical(t.path) / "data.jsonl").string());
  EXPECT_EQ(j["model"], "smollm2-135m");
  EXPECT_EQ(j["lr"], c.lr);
}

TEST(FixtureLookup, MissingFixtureNamesThePathItLookedFor) {
  try {
    testing::fixture_json("no-such-dir/no-such-fixture.json");
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(testing::fixture("no-such-dir/no-such-fixture.json")), std::string::npos)
        << e.what();
  }
  // Another source tree (a copied test binary): the lookup follows $QTRAIN_SOURCE_DIR and says so.
  ::setenv("QTRAIN_SOURCE_DIR", "/nonexistent/qtrain", 1);
  try {
    testing::fixture_json("tiny-llama-ref.json");
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/qtrain/tests/fixtures/tiny-llama-ref.json"), std::string::npos)
        << e.what();
  }
  ::unsetenv("QTRAIN_SOURCE_DIR");
  EXPECT_TRUE(testing::fixture_json("tiny-llama-ref.json").contains("input_ids"));
}

}  // namespace qtrain
