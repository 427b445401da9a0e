#include "trainer/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace qtrain {

namespace {

constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1};
std::atomic<int> g_requested{0};
struct sigaction g_previous[3];
struct sigaction g_previous_xfsz;

constexpr char kOneRank[] =
    "\nqtrain: stop requested; finishing this step and writing a checkpoint (signal again to exit at once)\n";
// mpirun also sends SIGTERM when it takes the job down after a rank died: then the step in
// progress never finishes, and the line must not promise a checkpoint.
constexpr char kRanks[] =
    "\nqtrain: stop requested; finishing this step and writing a checkpoint (signal again to exit at once). "
    "If another rank failed, mpirun sent this: no step finishes, the last checkpoint stays for --resume\n";
std::atomic<bool> g_ranks{false};

void on_stop_signal(int sig) {
  int expected = 0;
  if (g_requested.compare_exchange_strong(expected, sig)) {
    const bool ranks = g_ranks.load();
    ssize_t ignored = ::write(STDERR_FILENO, ranks ? kRanks : kOneRank, (ranks ? sizeof kRanks : sizeof kOneRank) - 1);
    (void)ignored;
    return;
  }
  // Second signal: die of it, with its usual exit status.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

StopSignals::StopSignals(int world) {
  g_requested = 0;
  g_ranks = world > 1;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a blocked read or collective just carries on
  for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &sa, &g_previous[i]);
  struct sigaction ign;
  std::memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGXFSZ, &ign, &g_previous_xfsz);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &g_previous[i], nullptr);
  sigaction(SIGXFSZ, &g_previous_xfsz, nullptr);
}

int StopSignals::requested() { return g_requested.load(); }

void StopSignals::request(int sig) {
  int expected = 0;
  g_requested.compare_exchange_strong(expected, sig);
}

const char* StopSignals::name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace qtrain
