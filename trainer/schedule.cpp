#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/error.h"

namespace qtrain {

ScheduleKind parse_schedule(const std::string& name, const std::string& flag) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  throw Error(flag + ": unknown schedule '" + name + "' (expected constant, linear or cosine)");
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
  }
  return "?";
}

LrSchedule::LrSchedule(ScheduleKind kind, double base_lr, int64_t warmup_steps, int64_t total_steps)
    : kind_(kind), base_lr_(base_lr), warmup_(warmup_steps), total_(total_steps) {
  if (warmup_steps < 0) throw Error("--warmup: must be >= 0, got " + std::to_string(warmup_steps));
}

double LrSchedule::factor(int64_t step) const {
  // The formulas below are transcribed from transformers/optimization.py,
  // including its max(1, .) guards and the cosine continuing past total.
  if (step < warmup_) return double(step) / double(std::max<int64_t>(1, warmup_));
  switch (kind_) {
    case ScheduleKind::Constant: return 1.0;
    case ScheduleKind::Linear:
      return std::max(0.0, double(total_ - step) / double(std::max<int64_t>(1, total_ - warmup_)));
    case ScheduleKind::Cosine: {
      double progress = double(step - warmup_) / double(std::max<int64_t>(1, total_ - warmup_));
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
    }
  }
  return 1.0;
}

}  // namespace qtrain
