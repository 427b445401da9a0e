#include "trainer/output_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>
#include <vector>

#include "kernels/error.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

// Alive and still a qtrain: a pid reused by another program after a crash
// does not hold the lock (/proc/PID/cmdline says which program it is).
bool lock_holder_alive(long pid) {
  if (pid == long(getpid())) return true;
  if (pid <= 0 || (::kill(pid_t(pid), 0) != 0 && errno != EPERM)) return false;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  if (!cmd || !std::getline(cmd, argv0, '\0')) return true;  // no /proc: trust kill()
  return argv0.find("qtrain") != std::string::npos;
}

// What a training run writes that another run must not silently replace.
bool is_result(const std::string& name) {
  return name == "checkpoint" || name == "checkpoint.old" || name == "adapter" || name == "model" ||
         name.rfind("checkpoint-step", 0) == 0;
}

}  // namespace

OutputLock::OutputLock(const std::string& out_dir) : path_((fs::path(out_dir) / ".qtrain.lock").string()) {
  std::error_code ec;
  // A file where the directory (or one above it) should be is the user's to fix: name it (exit 2).
  for (fs::path p = fs::path(out_dir).lexically_normal(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p, ec) && !fs::is_directory(p, ec))
      throw Error("--out " + out_dir + ": " + p.string() + " is a file, not a directory");
    if (p == p.parent_path()) break;
  }
  created_dir_ = !fs::exists(out_dir);
  fs::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir + ": cannot create output directory (" + ec.message() + ")", ErrorKind::Runtime);
  const std::string me = std::to_string(getpid()) + " " + host_name() + "\n";
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      bool ok = ::write(fd, me.data(), me.size()) == ssize_t(me.size());
      ::close(fd);
      if (!ok) {
        ::unlink(path_.c_str());
        throw Error(path_ + ": cannot write lock file (" + std::strerror(errno) + ")", ErrorKind::Runtime);
      }
      return;
    }
    if (errno != EEXIST) throw Error(path_ + ": cannot create lock file (" + std::strerror(errno) + ")", ErrorKind::Runtime);
    std::ifstream in(path_);
    long pid = 0;
    std::string host;
    in >> pid >> host;
    if (pid > 0 && host != host_name())
      throw Error(out_dir + " is in use by qtrain pid " + std::to_string(pid) + " on " + host + " (" + path_ +
                  "); use another --out, or delete the lock file if that run is gone");
    if (lock_holder_alive(pid))
      throw Error(out_dir + " is in use by qtrain pid " + std::to_string(pid) + " (" + path_ +
                  "); wait for it or use another --out");
    spdlog::warn("{}: taking over the lock of pid {}, which no longer runs", path_, pid);
    ::unlink(path_.c_str());  // then try O_EXCL again: two runs taking over at once still get one winner
  }
  throw Error(path_ + ": could not take the lock (another run keeps taking it)", ErrorKind::Runtime);
}

OutputLock::~OutputLock() {
  std::ifstream in(path_);
  long pid = 0;
  in >> pid;
  if (pid != long(getpid())) return;
  ::unlink(path_.c_str());
  std::error_code ec;  // a run refused before writing anything leaves no empty --out behind
  if (created_dir_ && fs::is_empty(fs::path(path_).parent_path(), ec)) fs::remove(fs::path(path_).parent_path(), ec);
}

namespace {

std::vector<std::string> earlier_results(const std::string& out_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out_dir, ec))
    if (is_result(e.path().filename().string())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

void check_output_dir(const std::string& out_dir, bool resuming, bool overwrite) {
  if (resuming || overwrite) return;
  const auto names = earlier_results(out_dir);
  if (names.empty()) return;
  std::string found;
  for (const auto& n : names) found += (found.empty() ? "" : ", ") + n + "/";
  throw Error(out_dir + " already holds an earlier run's " + found + ": continue it with --resume " + out_dir +
              ", replace it with --overwrite, or choose another --out");
}

void remove_earlier_results(const std::string& out_dir) {
  std::error_code ec;
  for (const auto& name : earlier_results(out_dir)) {
    if (fs::remove_all(fs::path(out_dir) / name, ec) > 0) spdlog::info("--overwrite: removed {}/{}", out_dir, name);
    if (ec) throw Error(out_dir + "/" + name + ": cannot remove (" + ec.message() + ")", ErrorKind::Runtime);
  }
}

}  // namespace qtrain
