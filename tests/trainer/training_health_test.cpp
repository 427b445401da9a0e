// The non-finite policy (skip with a count, stop after N in a row, or stop at
// once) and the collapse check (gradient norm exactly 0, or a loss back at
// ln(vocab) after being well below it, several steps in a row).
#include "trainer/training_health.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "tests/test_util.h"

namespace qtrain {

namespace {
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
using V = TrainingHealth::Verdict;
}  // namespace

TEST(TrainingHealth, SkipsNonFiniteStepsAndStopsAfterTooManyInARow) {
  TrainingHealth h({/*stop_on_nonfinite=*/false, /*max_skips=*/3, /*collapse_steps=*/3, /*vocab=*/100});
  EXPECT_EQ(h.observe(1, 2.0, 1.0, 10), V::Ok);
  EXPECT_EQ(h.observe(2, 2.0, kNan, 10), V::Skip);
  EXPECT_NE(h.reason().find("non-finite gradient"), std::string::npos) << h.reason();
  EXPECT_EQ(h.observe(3, kInf, 1.0, 10), V::Skip);
  EXPECT_EQ(h.observe(4, 2.0, 1.0, 10), V::Ok);  // a good step resets the run
  EXPECT_EQ(h.consecutive_skips(), 0);
  EXPECT_EQ(h.skipped_total(), 2);
  EXPECT_EQ(h.observe(5, kNan, kNan, 10), V::Skip);
  EXPECT_EQ(h.observe(6, kNan, kNan, 10), V::Skip);
  EXPECT_EQ(h.observe(7, kNan, kNan, 10), V::Stop);
  EXPECT_NE(h.reason().find("3 steps in a row"), std::string::npos) << h.reason();
  EXPECT_EQ(h.skipped_total(), 5);
}

TEST(TrainingHealth, StopPolicyStopsAtTheFirstNonFiniteStep) {
  TrainingHealth h({true, 10, 3, 100});
  EXPECT_EQ(h.observe(1, 2.0, 1.0, 10), V::Ok);
  EXPECT_EQ(h.observe(2, 2.0, kInf, 10), V::Stop);
  EXPECT_NE(h.reason().find("--on-nonfinite stop"), std::string::npos) << h.reason();
}

TEST(TrainingHealth, ZeroGradientNormForSeveralStepsIsACollapse) {
  TrainingHealth h({false, 10, 3, 100});
  EXPECT_EQ(h.observe(1, 4.0, 1.0, 10), V::Ok);
  EXPECT_EQ(h.observe(2, 4.6, 0.0, 10), V::Ok);
  EXPECT_EQ(h.observe(3, 4.6, 0.0, 10), V::Ok);
  EXPECT_EQ(h.observe(4, 4.6, 0.0, 0), V::Ok);  // no tokens: says nothing, breaks nothing
  EXPECT_EQ(h.observe(5, 4.6, 0.0, 10), V::Stop);
  EXPECT_NE(h.reason().find("gradient norm exactly 0"), std::string::npos) << h.reason();
}

// A run whose steps hold no token in the loss trains nothing (instruction data with every
// response past --seq-len, say): it ran to the end at loss 0 and exited 0. It stops once
// --collapse-steps such steps have come before any step with tokens; after one, a
// token-less step is a batch of cut rows, as before.
TEST(TrainingHealth, NoLossTokenFromTheStartStops) {
  TrainingHealth h({false, 10, 3, 100});
  EXPECT_EQ(h.observe(1, 0.0, 0.0, 0), V::Ok);
  EXPECT_EQ(h.observe(2, 0.0, 0.0, 0), V::Ok);
  EXPECT_EQ(h.observe(3, 0.0, 0.0, 0), V::Stop);
  EXPECT_NE(h.reason().find("no token in the loss"), std::string::npos) << h.reason();
  EXPECT_NE(h.reason().find("--seq-len"), std::string::npos) << h.reason();
  TrainingHealth later({false, 10, 3, 100});
  EXPECT_EQ(later.observe(1, 4.0, 1.0, 10), V::Ok);
  for (int s = 2; s < 8; ++s) EXPECT_EQ(later.observe(s, 0.0, 0.0, 0), V::Ok);
  TrainingHealth off({false, 10, 0, 100});
  for (int s = 1; s < 8; ++s) EXPECT_EQ(off.observe(s, 0.0, 0.0, 0), V::Ok);
}

TEST(TrainingHealth, LossBackAtLnVocabAfterLearningIsACollapse) {
  const double uniform = std::log(1000.0);
  TrainingHealth h({false, 10, 3, 1000});
  // Starting at ln(vocab) is normal for a fresh model: not a collapse.
  for (int s = 1; s <= 5; ++s) EXPECT_EQ(h.observe(s, uniform, 0.5, 10), V::Ok) << s;
  EXPECT_EQ(h.observe(6, 3.0, 0.5, 10), V::Ok);
  EXPECT_EQ(h.observe(7, uniform, 0.5, 10), V::Ok);
  EXPECT_EQ(h.observe(8, uniform * (1 + 1e-4), 0.5, 10), V::Ok);
  EXPECT_EQ(h.observe(9, uniform, 0.5, 10), V::Stop);
  EXPECT_NE(h.reason().find("ln(vocab 1000)"), std::string::npos) << h.reason();
}

TEST(TrainingHealth, LossFarAboveLnVocabIsADivergence) {
  const double uniform = std::log(300.0);
  TrainingHealth h({false, 10, 3, 300});
  EXPECT_EQ(h.observe(1, 6.08, 5.0, 10), V::Ok);
  EXPECT_EQ(h.observe(2, 1220, 94, 10), V::Ok);
  EXPECT_EQ(h.observe(3, 4080, 140, 10), V::Ok);
  EXPECT_EQ(h.observe(4, 4050, 150, 10), V::Stop);
  EXPECT_NE(h.reason().find("diverged"), std::string::npos) << h.reason();
  // A model that starts there (never below) is not said to diverge.
  TrainingHealth fresh({false, 10, 3, 300});
  for (int s = 1; s < 10; ++s) EXPECT_EQ(fresh.observe(s, 4 * uniform, 1.0, 10), V::Ok) << s;
}

TEST(TrainingHealth, NoisyLossNearLnVocabAndCheckOffAreNotCollapses) {
  const double uniform = std::log(1000.0);
  TrainingHealth h({false, 10, 3, 1000});
  EXPECT_EQ(h.observe(1, 3.0, 0.5, 10), V::Ok);
  for (int s = 2; s < 20; ++s) EXPECT_EQ(h.observe(s, uniform + (s % 2 ? 0.05 : -0.05), 0.5, 10), V::Ok) << s;
  TrainingHealth off({false, 10, 0, 1000});
  for (int s = 1; s < 20; ++s) EXPECT_EQ(off.observe(s, uniform, 0.0, 10), V::Ok) << s;
}

TEST(TrainingHealth, TestSeamParsesStepList) {
  ::setenv("QTRAIN_TEST_NONFINITE_GRAD_AT", "3,5,12", 1);
  EXPECT_EQ(nonfinite_test_steps(), (std::set<int64_t>{3, 5, 12}));
  ::unsetenv("QTRAIN_TEST_NONFINITE_GRAD_AT");
  EXPECT_TRUE(nonfinite_test_steps().empty());
}

}  // namespace qtrain
