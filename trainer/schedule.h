// Learning-rate schedules with linear warmup, exactly as HF transformers'
// get_{constant,linear,cosine}_schedule_with_warmup (cosine: num_cycles 0.5),
// so a qtrain run and an HF Trainer run with the same flags use the same lrs.
#pragma once
#include <cstdint>
#include <string>

namespace qtrain {

enum class ScheduleKind { Constant, Linear, Cosine };

// "constant" | "linear" | "cosine"; anything else is a BadInput error naming `flag`.
ScheduleKind parse_schedule(const std::string& name, const std::string& flag = "--schedule");
const char* schedule_name(ScheduleKind kind);

class LrSchedule {
 public:
  LrSchedule(ScheduleKind kind, double base_lr, int64_t warmup_steps, int64_t total_steps);

  // The lr used by optimizer step number `step` (0-based: the first update
  // uses lr(0), which is 0 when there is warmup, as in HF).
  double lr(int64_t step) const { return base_lr_ * factor(step); }
  double factor(int64_t step) const;

 private:
  ScheduleKind kind_;
  double base_lr_;
  int64_t warmup_, total_;
};

}  // namespace qtrain
