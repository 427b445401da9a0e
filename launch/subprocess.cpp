#include "launch/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "kernels/error.h"

namespace qtrain::launch {

namespace fs = std::filesystem;

std::string find_launch_script(const std::string& file, const char* env_var) {
  if (const char* env = std::getenv(env_var)) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
    for (const fs::path& t : {d / "launch" / file, d / "share" / "qtrain" / file})
      if (fs::exists(t, ec)) return t.string();
  throw Error("cannot find launch/" + file + " above " + exe.string() + "; set " + env_var + " to its path",
              ErrorKind::Runtime);
}

int run_program(const std::vector<std::string>& args, bool quiet) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) throw Error("fork failed", ErrorKind::Runtime);
  if (pid == 0) {
    if (quiet) {
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
      }
    }
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) throw Error(args[0] + " was killed", ErrorKind::Runtime);
  return WEXITSTATUS(status);
}

}  // namespace qtrain::launch
