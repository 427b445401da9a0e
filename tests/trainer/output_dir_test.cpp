// --out: a lock naming the live run that holds it (a dead one's is taken
// over), and no silent replacement of an earlier run's results.
#include "trainer/output_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kernels/error.h"
#include "tests/test_util.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

using testing::TempDir;

std::string host() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

void write_lock(const fs::path& out, long pid, const std::string& h) {
  std::ofstream(out / ".qtrain.lock") << pid << " " << h << "\n";
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a qtrain::Error";
  return "";
}

}  // namespace

// A live process whose command line is `argv0 30`.
pid_t spawn_sleeper(const char* argv0) {
  pid_t child = fork();
  if (child == 0) {
    execl("/bin/sleep", argv0, "30", static_cast<char*>(nullptr));
    _exit(127);
  }
  usleep(100000);  // let the exec happen
  return child;
}

TEST(OutputLock, SecondRunRefusedNamingTheFirstOnesPid) {
  TempDir t;
  pid_t child = spawn_sleeper("qtrain");
  write_lock(t.path, child, host());
  std::string msg = error_of([&] { OutputLock lock(t.path.string()); });
  EXPECT_NE(msg.find("in use by qtrain pid " + std::to_string(child)), std::string::npos) << msg;
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  // Now that pid is dead: its lock is stale and is taken over.
  {
    OutputLock lock(t.path.string());
    std::ifstream in(lock.path());
    long pid = 0;
    in >> pid;
    EXPECT_EQ(pid, long(getpid()));
  }
  EXPECT_FALSE(fs::exists(t.path / ".qtrain.lock")) << "the lock is removed when the run ends";
}

TEST(OutputLock, APidReusedByAnotherProgramDoesNotHoldTheLock) {
  TempDir t;
  pid_t child = spawn_sleeper("sleep");
  write_lock(t.path, child, host());
  EXPECT_NO_THROW(OutputLock lock(t.path.string()));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST(OutputLock, HeldLockRefusesAnotherInTheSameProcessAndOtherHosts) {
  TempDir t;
  {
    OutputLock first(t.path.string());
    std::string msg = error_of([&] { OutputLock second(t.path.string()); });
    EXPECT_NE(msg.find("pid " + std::to_string(getpid())), std::string::npos) << msg;
  }
  write_lock(t.path, 12345, "some-other-host");
  std::string msg = error_of([&] { OutputLock lock(t.path.string()); });
  EXPECT_NE(msg.find("on some-other-host"), std::string::npos) << msg;
}

TEST(OutputDir, EarlierResultsNeedResumeOrOverwrite) {
  TempDir t;
  EXPECT_NO_THROW(check_output_dir(t.path.string(), false, false));  // empty: fine
  fs::create_directories(t.path / "adapter");
  fs::create_directories(t.path / "checkpoint");
  fs::create_directories(t.path / "checkpoint-step4");
  std::ofstream(t.path / "metrics.jsonl") << "{}\n";
  std::string msg = error_of([&] { check_output_dir(t.path.string(), false, false); });
  EXPECT_NE(msg.find("adapter/, checkpoint/, checkpoint-step4/"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--overwrite"), std::string::npos) << msg;
  EXPECT_NO_THROW(check_output_dir(t.path.string(), /*resuming=*/true, false));
  EXPECT_TRUE(fs::exists(t.path / "adapter"));
  // --overwrite passes the check but removes nothing yet: a run refused later (bad --data, a
  // --target typo) must not have deleted the earlier one. The run removes them once it starts.
  EXPECT_NO_THROW(check_output_dir(t.path.string(), false, /*overwrite=*/true));
  EXPECT_TRUE(fs::exists(t.path / "adapter"));
  EXPECT_TRUE(fs::exists(t.path / "checkpoint"));
  remove_earlier_results(t.path.string());
  EXPECT_TRUE(fs::exists(t.path / "metrics.jsonl"));  // the new run's MetricsWriter replaces it
  EXPECT_FALSE(fs::exists(t.path / "adapter"));
  EXPECT_FALSE(fs::exists(t.path / "checkpoint"));
  EXPECT_FALSE(fs::exists(t.path / "checkpoint-step4"));
}

}  // namespace qtrain
