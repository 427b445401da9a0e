// qtrain report: a run's report.md with PNG plots, or a bench table as a PNG.
// The plotting is launch/report.py on a Python that has matplotlib (Debian's
// python3-matplotlib); without one the command stops with the install line.
#include <cstdlib>
#include <filesystem>

#include "kernels/error.h"
#include "launch/commands.h"
#include "launch/subprocess.h"

namespace qtrain::launch {

namespace {

namespace fs = std::filesystem;

constexpr const char* kInstallLine = "apt-get install python3-matplotlib";

struct ReportOptions {
  std::string run_dir, out, python;
  std::vector<std::string> bench;
};

bool has_matplotlib(const std::string& python) {
  return run_program({python, "-c", "import matplotlib"}, /*quiet=*/true) == 0;
}

// --python, else $QTRAIN_PYTHON: only that one. Otherwise the first of
// python3 (PATH) and Debian's /usr/bin/python3 that imports matplotlib: a
// PATH python3 from pyenv or a venv often lacks the Debian package.
std::string find_python(const std::string& given) {
  std::string fixed = given;
  if (fixed.empty())
    if (const char* env = std::getenv("QTRAIN_PYTHON")) fixed = env;
  if (!fixed.empty()) {
    if (has_matplotlib(fixed)) return fixed;
    if (run_program({fixed, "-c", "pass"}, /*quiet=*/true) == 127)  // exec failed: no such program
      throw Error("report: " + fixed + ": cannot run (no such program); give --python or $QTRAIN_PYTHON a Python 3 "
                  "with matplotlib");
    throw Error("report: " + fixed + " cannot import matplotlib; " + kInstallLine + " (Debian/Ubuntu), or pip install "
                "matplotlib into it");
  }
  for (const char* p : {"python3", "/usr/bin/python3"})
    if (has_matplotlib(p)) return p;
  throw Error(std::string("report: plotting needs Python 3 with matplotlib: ") + kInstallLine +
              " (Debian/Ubuntu; launch/install-deps.sh installs it), or set QTRAIN_PYTHON to a python that has it");
}

int run_report(const ReportOptions& o) {
  if (o.bench.empty() == o.run_dir.empty())
    throw Error("report: give a RUN_DIR or --bench FILE.json (one of the two)");
  if (!o.run_dir.empty() && !o.out.empty())
    throw Error("report: --out names the PNG of one --bench file; a RUN_DIR report is written to RUN_DIR/report.md "
                "and RUN_DIR/plots/");
  if (!o.run_dir.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(o.run_dir) / "metrics.jsonl", ec))
      throw Error(o.run_dir + "/metrics.jsonl: not found (RUN_DIR is a `qtrain train --out` directory)");
  }
  for (const auto& f : o.bench)
    if (!fs::is_regular_file(f)) throw Error(f + ": bench file not found");
  const std::string python = find_python(o.python);
  std::vector<std::string> args = {python, find_launch_script("report.py", "QTRAIN_REPORT_SCRIPT")};
  if (o.run_dir.empty()) {
    args.push_back("--bench");
    args.insert(args.end(), o.bench.begin(), o.bench.end());
    if (!o.out.empty()) args.insert(args.end(), {"--out", o.out});
  } else {
    args.push_back(o.run_dir);
  }
  const int rc = run_program(args);
  if (rc == 127) throw Error("report: cannot run " + python, ErrorKind::Runtime);
  return rc == 0 ? 0 : rc == 2 ? 2 : 1;  // report.py already said why on stderr
}

}  // namespace

void register_report(CLI::App& app, Runner& run) {
  auto o = std::make_shared<ReportOptions>();
  auto* sub = app.add_subcommand(
      "report",
      "Plots of a training run: writes RUN_DIR/report.md (a summary table from run.json, and the plots) and "
      "RUN_DIR/plots/*.png from RUN_DIR/metrics.jsonl: loss and eval loss, tokens/s (and MFU), learning rate, "
      "gradient norm, GPU memory (GPU runs). With --bench, renders bench/results/*.json tables to PNG instead: rows "
      "of {config, metric, qtrain, anchor, ratio} as bars of qtrain against its anchor, other rows as a table.\n"
      "Needs Python 3 with matplotlib (apt-get install python3-matplotlib).\n"
      "  qtrain report out/run1\n  qtrain report --bench bench/results/train_vs_hf_NVIDIA-H200_2026-12-01.json");
  sub->add_option("RUN_DIR", o->run_dir, "a `qtrain train --out` directory (metrics.jsonl, run.json)");
  sub->add_option("--bench", o->bench, "bench result JSON file(s) to render, each to FILE.png beside it")
      ->expected(1, -1);
  sub->add_option("--out", o->out, "with one --bench file: the PNG to write instead of FILE.png");
  sub->add_option("--python", o->python,
                  "Python with matplotlib (default: $QTRAIN_PYTHON, else python3 or /usr/bin/python3, the first "
                  "that has it)");
  sub->callback([&run, o] { run = [o] { return run_report(*o); }; });
}

}  // namespace qtrain::launch
