// Training progress for people. On a terminal: one line redrawn in place,
//   step 12/100 |##                  | loss 2.345 | 1234 tok/s | 0.41 s/step | ETA 36s
// Without one (a log file, a batch job): a plain spdlog line every N steps.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace qtrain {

struct ProgressInfo {
  int64_t step = 0, total = 0;  // steps done, steps planned
  double loss = 0;
  double tokens_per_s = 0;
  double s_per_step = 0;
  double mfu = 0;  // model FLOPs utilisation, 0 = unknown (CPU)
};

// "45s", "1m05s", "2h03m", "3d04h"; "?" for negative or non-finite input.
std::string format_duration(double seconds);
// "|#####     |": `width` cells filled in proportion to step/total.
std::string format_bar(int64_t step, int64_t total, int width);
// The terminal line (with_bar) or the log line (without).
std::string format_progress(const ProgressInfo& p, bool with_bar);

class Progress {
 public:
  // terminal: redraw one line on stderr; else log every `log_every` steps.
  Progress(int64_t total_steps, int log_every, bool terminal);
  // Detects a terminal on stderr.
  static bool stderr_is_terminal();

  void update(const ProgressInfo& p);
  void finish();  // ends the terminal line

 private:
  int64_t total_;
  int log_every_;
  bool terminal_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace qtrain
