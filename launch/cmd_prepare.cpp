// qtrain prepare: build a CodeSearchNet-format corpus from local Python sources.
// The extraction is Python's own `ast` (launch/prepare_csn.py, run with python3),
// found next to the binary's source tree or via $QTRAIN_PREPARE_SCRIPT.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "kernels/error.h"
#include "launch/commands.h"

namespace qtrain::launch {

namespace {

namespace fs = std::filesystem;

struct PrepareOptions {
  std::string from, out, repo, python = "python3";
  int shard = 0;
};

std::string find_script() {
  if (const char* env = std::getenv("QTRAIN_PREPARE_SCRIPT")) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> tries;
  for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path()) {
    tries.push_back(d / "launch" / "prepare_csn.py");
    tries.push_back(d / "share" / "qtrain" / "prepare_csn.py");
  }
  for (const auto& t : tries)
    if (fs::exists(t, ec)) return t.string();
  throw Error("prepare: cannot find launch/prepare_csn.py above " + exe.string() +
              "; set QTRAIN_PREPARE_SCRIPT to its path", ErrorKind::Runtime);
}

int run_prepare(const PrepareOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.from, ec)) throw Error("prepare: --from " + o.from + " is not a directory");
  std::string script = find_script();
  std::vector<std::string> args = {o.python, script, "--from", o.from, "--out", o.out, "--shard", std::to_string(o.shard)};
  if (!o.repo.empty()) args.insert(args.end(), {"--repo", o.repo});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw Error("prepare: fork failed", ErrorKind::Runtime);
  if (pid == 0) {
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "qtrain: error: prepare: cannot run %s\n", argv[0]);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) throw Error("prepare: " + o.python + " was killed", ErrorKind::Runtime);
  int rc = WEXITSTATUS(status);
  if (rc == 127) throw Error("prepare: cannot run '" + o.python + "' (is python3 installed?)", ErrorKind::Runtime);
  return rc == 0 ? 0 : 2;
}

}  // namespace

void register_prepare(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<PrepareOptions>();
  auto* sub = app.add_subcommand(
      "prepare",
      "Build a CodeSearchNet-format corpus from a local tree of Python sources (no download needed): every "
      "function and method, extracted with Python's ast, becomes a record with the CodeSearchNet fields; files "
      "are split 90/5/5 into train/valid/test by a hash of their path. Writes "
      "ROOT/python/final/jsonl/{train,valid,test}/python_{split}_N.jsonl.gz and prints a JSON line of counts.\n"
      "Example: qtrain prepare --from /usr/lib/python3/dist-packages/numpy --out corpus --repo numpy --shard 1");
  sub->add_option("--from", opt->from, "Directory of Python sources (walked recursively)")->required();
  sub->add_option("--out", opt->out, "Corpus root to write (created)")->required();
  sub->add_option("--repo", opt->repo, "Value of the 'repo' field (default: the --from directory's name)");
  sub->add_option("--shard", opt->shard, "N in python_{split}_N.jsonl.gz, to add several source trees")
      ->capture_default_str();
  sub->add_option("--python", opt->python, "Python interpreter")->capture_default_str();
  sub->callback([&run, opt] { run = [opt] { return run_prepare(*opt); }; });
}

}  // namespace qtrain::launch
