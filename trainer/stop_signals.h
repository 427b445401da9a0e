// Graceful stop on SIGTERM / SIGINT / SIGUSR1 (SLURM sends SIGUSR1 or SIGTERM
// before preempting a job): the first one only raises a flag, which the
// training loop reads at the end of the step in progress, so the run can
// finish that step, write a checkpoint and say how to resume. A second one
// ends the process at once, as the signal would have without the handler.
//
// SIGXFSZ (a write past `ulimit -f`) is ignored, so the write returns EFBIG
// and the ordinary error path reports which file could not be written,
// instead of the process dying without a word.
#pragma once

namespace qtrain {

class StopSignals {
 public:
  // Installs the handlers. world > 1: the line printed on a signal also says what happens when
  // the signal is mpirun taking the job down after another rank failed (no step finishes).
  explicit StopSignals(int world = 1);
  ~StopSignals();  // restores the previous ones
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first signal received (SIGTERM, SIGINT or SIGUSR1), or 0.
  static int requested();
  // For tests and for ranks told by another rank: act as if `sig` had arrived.
  static void request(int sig);
  static const char* name(int sig);
};

}  // namespace qtrain
