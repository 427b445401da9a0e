// Watches each step's loss and gradient norm for the two ways a run goes bad
// without crashing:
//  - a non-finite step (loss or gradient norm inf/nan). The finiteness test is
//    the gradient-norm reduction itself (trainer/grad_clip: a nan or inf
//    anywhere makes the sum of squares non-finite), so it costs no extra pass.
//    Policy skip drops the update and counts it; `max_skips` in a row stop the
//    run. Policy stop stops at the first one.
//  - a collapse: the model predicts a uniform distribution (loss = ln(vocab))
//    or has stopped learning (gradient norm exactly 0), for `collapse_steps`
//    steps in a row. A learning rate far too high does this (issue 21: --lr 1e6
//    gives loss ln(vocab) and gradient norm 0.0 from step 3 on), and the run
//    would otherwise finish rc 0 with an adapter of perplexity = vocab size.
//    Or a divergence: the loss above 3 ln(vocab), far worse than a uniform
//    guess, several steps in a row after it was below (full fine-tuning of the
//    tiny fixtures at --lr 10 goes from 6 to 1e4 and used to finish rc 0).
#pragma once
#include <cstdint>
#include <set>
#include <string>

namespace qtrain {

struct HealthOptions {
  bool stop_on_nonfinite = false;  // --on-nonfinite stop
  int max_skips = 10;              // --max-nonfinite-skips
  int collapse_steps = 3;          // --collapse-steps (0 = off)
  int vocab_size = 0;              // for ln(vocab); 0 = no loss-based check
};

class TrainingHealth {
 public:
  enum class Verdict { Ok, Skip, Stop };

  explicit TrainingHealth(const HealthOptions& o) : o_(o) {}

  // One finished step (1-based `step`). tokens: predicted tokens in the global
  // batch (a step without any says nothing about collapse, but collapse_steps of
  // them before any step with tokens stop the run: it is training nothing). On
  // Stop, reason() holds the line to print.
  Verdict observe(int64_t step, double loss, double grad_norm, double tokens);

  int64_t skipped_total() const { return skipped_total_; }
  int consecutive_skips() const { return consecutive_skips_; }
  const std::string& reason() const { return reason_; }

 private:
  HealthOptions o_;
  int64_t skipped_total_ = 0;
  int consecutive_skips_ = 0;
  int zero_grad_run_ = 0, uniform_loss_run_ = 0, diverged_run_ = 0;
  int tokenless_run_ = 0;         // steps without a loss token, none with one before them
  bool had_tokens_ = false;
  double best_loss_ = 0;
  bool have_best_ = false;
  std::string reason_;
};

// Test seam: the steps (1-based) listed in QTRAIN_TEST_NONFINITE_GRAD_AT
// ("3,4,5") get their reduced gradients multiplied by NaN before the norm is
// taken, as an overflow in backward would leave them. Empty when unset.
std::set<int64_t> nonfinite_test_steps();

}  // namespace qtrain
