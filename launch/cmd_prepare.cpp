// qtrain prepare: build a CodeSearchNet-format corpus from local Python sources.
// The extraction is Python's own `ast` (launch/prepare_csn.py, run with python3),
// found next to the binary's source tree or via $QTRAIN_PREPARE_SCRIPT.
#include <filesystem>

#include "kernels/error.h"
#include "launch/commands.h"
#include "launch/subprocess.h"

namespace qtrain::launch {

namespace {

namespace fs = std::filesystem;

struct PrepareOptions {
  std::string from, out, repo, python = "python3";
  int shard = 0;
};

int run_prepare(const PrepareOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.from, ec)) throw Error("prepare: --from " + o.from + " is not a directory");
  std::string script = find_launch_script("prepare_csn.py", "QTRAIN_PREPARE_SCRIPT");
  std::vector<std::string> args = {o.python, script, "--from", o.from, "--out", o.out, "--shard", std::to_string(o.shard)};
  if (!o.repo.empty()) args.insert(args.end(), {"--repo", o.repo});
  int rc = run_program(args);
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
