#include "trainer/training_health.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace qtrain {

namespace {

// A uniform prediction gives exactly ln(vocab); a healthy model passing by it
// on the way down is neither this close nor there several steps in a row.
constexpr double kUniformTolerance = 1e-3;  // relative to ln(vocab)
// "Far below": the run had learned something before it came back to ln(vocab).
constexpr double kLearnedMargin = 0.5;      // nats
// Diverged: a loss this many times ln(vocab) is far worse than guessing
// uniformly. (A pretrained model on unusual text starts well below this; a
// learning rate 1e4 times too high reaches it within 2 steps: see
// tests/scripts/train_input_checks.sh.)
constexpr double kDivergedFactor = 3.0;

std::string fmt(const char* f, double a, double b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

TrainingHealth::Verdict TrainingHealth::observe(int64_t step, double loss, double grad_norm, double tokens) {
  const std::string at = "step " + std::to_string(step) + ": ";
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    ++skipped_total_;
    ++consecutive_skips_;
    zero_grad_run_ = uniform_loss_run_ = 0;
    const std::string desc = at + "non-finite " + (std::isfinite(grad_norm) ? "loss" : "gradient") + " (loss " +
                             fmt("%g", loss) + ", gradient norm " + fmt("%g", grad_norm) + ")";
    if (o_.stop_on_nonfinite) {
      reason_ = desc + "; stopping (--on-nonfinite stop). Lower --lr, or check the data";
      return Verdict::Stop;
    }
    if (consecutive_skips_ >= o_.max_skips) {
      reason_ = desc + "; " + std::to_string(consecutive_skips_) +
                " steps in a row skipped (--max-nonfinite-skips), stopping. Lower --lr, or check the data";
      return Verdict::Stop;
    }
    reason_ = desc + ", update skipped";
    return Verdict::Skip;
  }
  consecutive_skips_ = 0;
  if (o_.collapse_steps <= 0) return Verdict::Ok;
  if (tokens <= 0) {
    // One such step is a batch of rows cut before their loss positions; a run that starts with
    // several and has never had a token trains nothing and would end at loss 0 with exit 0.
    if (!had_tokens_ && ++tokenless_run_ >= o_.collapse_steps) {
      reason_ = at + "no token in the loss in any of the " + std::to_string(tokenless_run_) +
                " steps so far: every row is cut or masked before the positions that train (instruction/chat data: "
                "the prompt fills --seq-len, so the response is cut off). Raise --seq-len, cap the prompt with "
                "--source-max-len, or check the data's response/assistant fields (--collapse-steps 0 runs anyway)";
      return Verdict::Stop;
    }
    return Verdict::Ok;
  }
  had_tokens_ = true;

  zero_grad_run_ = grad_norm == 0.0 ? zero_grad_run_ + 1 : 0;
  const double uniform = o_.vocab_size > 1 ? std::log(double(o_.vocab_size)) : 0.0;
  const bool at_uniform = uniform > 0 && std::abs(loss - uniform) <= kUniformTolerance * uniform;
  const bool had_learned = have_best_ && best_loss_ < uniform - kLearnedMargin;
  uniform_loss_run_ = at_uniform && had_learned ? uniform_loss_run_ + 1 : 0;
  const bool was_below = have_best_ && best_loss_ < kDivergedFactor * uniform;
  diverged_run_ = uniform > 0 && was_below && loss > kDivergedFactor * uniform ? diverged_run_ + 1 : 0;
  if (!have_best_ || loss < best_loss_) best_loss_ = loss, have_best_ = true;

  if (zero_grad_run_ >= o_.collapse_steps) {
    reason_ = at + "training collapsed: gradient norm exactly 0 for " + std::to_string(zero_grad_run_) +
              " steps in a row (loss " + fmt("%.4f", loss) + "). The learning rate is likely far too high; lower --lr";
    return Verdict::Stop;
  }
  if (uniform_loss_run_ >= o_.collapse_steps) {
    reason_ = at + "training collapsed: loss " + fmt("%.4f = ln(vocab %g)", loss, double(o_.vocab_size)) +
              " (a uniform prediction) for " + std::to_string(uniform_loss_run_) + " steps in a row, after " +
              fmt("%.4f", best_loss_) + " earlier. The learning rate is likely far too high; lower --lr";
    return Verdict::Stop;
  }
  if (diverged_run_ >= o_.collapse_steps) {
    reason_ = at + "training diverged: loss " + fmt("%.4g, above %.3g", loss, kDivergedFactor * uniform) +
              " = 3 ln(vocab) (far worse than a uniform guess) for " + std::to_string(diverged_run_) +
              " steps in a row, after " + fmt("%.4f", best_loss_) + " earlier. The learning rate is likely far too high; lower --lr";
    return Verdict::Stop;
  }
  return Verdict::Ok;
}

std::set<int64_t> nonfinite_test_steps() {
  std::set<int64_t> out;
  const char* env = std::getenv("QTRAIN_TEST_NONFINITE_GRAD_AT");
  for (const char* p = env; p && *p;) {
    char* end = nullptr;
    long long v = std::strtoll(p, &end, 10);
    if (end == p) break;
    out.insert(v);
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

}  // namespace qtrain
