// The first SIGTERM/SIGINT/SIGUSR1 only raises the stop flag; a second one
// ends the process with the signal; SIGXFSZ is ignored while installed.
#include "trainer/stop_signals.h"

#include <signal.h>

#include "tests/test_util.h"

namespace qtrain {

TEST(StopSignals, FirstSignalSetsTheFlagOnly) {
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) {
    StopSignals s;
    EXPECT_EQ(StopSignals::requested(), 0);
    ::raise(sig);
    EXPECT_EQ(StopSignals::requested(), sig);  // and the process is still here
  }
}

TEST(StopSignals, SecondSignalExitsAtOnce) {
  EXPECT_EXIT(
      {
        StopSignals s;
        ::raise(SIGTERM);
        ::raise(SIGTERM);
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "stop requested");
}

// Under mpirun the signal also comes from mpirun taking the job down after a rank died
// (kill -9): the survivor then cannot finish its step, and no checkpoint is written. Its
// line said "writing a checkpoint"; with several ranks it says the last one stays instead.
TEST(StopSignals, SeveralRanksSayTheLastCheckpointStaysIfARankFailed) {
  EXPECT_EXIT(
      {
        StopSignals s(2);
        ::raise(SIGTERM);
        ::raise(SIGTERM);
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "stop requested.*another rank.*last checkpoint stays");
}

TEST(StopSignals, FileSizeLimitSignalIsIgnoredSoWritesFail) {
  EXPECT_EXIT(
      {
        StopSignals s;
        ::raise(SIGXFSZ);
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "");
}

}  // namespace qtrain
