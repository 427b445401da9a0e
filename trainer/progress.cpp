#include "trainer/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qtrain {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = int64_t(std::llround(seconds));
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
  return buf;
}

std::string format_bar(int64_t step, int64_t total, int width) {
  double frac = total > 0 ? std::clamp(double(step) / double(total), 0.0, 1.0) : 0.0;
  int filled = int(frac * width);
  return "|" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), ' ') + "|";
}

std::string format_progress(const ProgressInfo& p, bool with_bar) {
  char buf[256];
  std::string s = "step " + std::to_string(p.step) + "/" + std::to_string(p.total);
  // The bar's closing '|' doubles as the separator before the loss.
  s += with_bar ? " " + format_bar(p.step, p.total, 20) : " |";
  std::snprintf(buf, sizeof buf, " loss %.4f | %.0f tok/s | %.2f s/step | ETA %s", p.loss, p.tokens_per_s,
                p.s_per_step, format_duration(double(std::max<int64_t>(0, p.total - p.step)) * p.s_per_step).c_str());
  s += buf;
  if (p.mfu > 0) {
    std::snprintf(buf, sizeof buf, " | MFU %.1f%%", 100.0 * p.mfu);
    s += buf;
  }
  return s;
}

Progress::Progress(int64_t total_steps, int log_every, bool terminal)
    : total_(total_steps), log_every_(std::max(1, log_every)), terminal_(terminal) {}

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::update(const ProgressInfo& p) {
  bool last = p.step >= total_;
  if (!terminal_) {
    if (p.step % log_every_ == 0 || last || p.step == 1) spdlog::info("{}", format_progress(p, false));
    return;
  }
  // Redraw at most ~10 times a second: fast steps would otherwise spend
  // their time in the terminal.
  auto now = std::chrono::steady_clock::now();
  if (!last && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  std::fprintf(stderr, "\r%s\x1b[K", format_progress(p, true).c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (terminal_ && drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace qtrain
