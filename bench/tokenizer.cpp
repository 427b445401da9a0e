// bench_tokenizer: byte-level BPE throughput on the CodeSearchNet corpus in ../shared.
// qtrain on one core against tiktoken and HF tokenizers (bench/tokenizer_anchors.py,
// built from the same encoder.json/vocab.bpe), then qtrain's scaling with threads.
// Run from the repo root:  build/bench_tokenizer [--threads 1,2,4] [--anchors FILE] [--python PY]
// Writes bench/results/tokenizer.json and prints a table.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/host_info.h"
#include "data/gz_lines.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using qtrain::bench::cpu_model;
using qtrain::bench::now_cpu;
using qtrain::bench::now_wall;

struct Options {
  std::string corpus = "../shared/data/codesearchnet-format/python/final/jsonl/train";
  std::string tokenizer = "../shared/data/gpt2-tokenizer";
  std::string python = fs::exists("/work/venv/bin/python") ? "/work/venv/bin/python" : "python3";
  std::string anchors;  // a JSON file from tokenizer_anchors.py; empty: run it; "none": skip
  std::string out = "bench/results/tokenizer.json";
  std::vector<int> threads;
  int repeats = 3;
};


std::vector<std::string> load_docs(const std::string& dir) {
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().string().ends_with(".jsonl.gz")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<std::string> docs;
  for (auto& f : files) {
    qtrain::LineReader r(f.string());
    std::string_view line;
    while (r.next(line)) docs.push_back(json::parse(line)["code"].get<std::string>());
  }
  return docs;
}


std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

json run_anchors(const Options& o) {
  std::string cmd = shell_quote(o.python) + " bench/tokenizer_anchors.py " + shell_quote(o.corpus) + " " +
                    shell_quote(o.tokenizer) + " " + std::to_string(o.repeats);
  std::fprintf(stderr, "running anchors: %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return json();
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0 || out.empty()) return json();
  return json::parse(out);
}

struct Timing {
  double wall = 1e30, cpu = 1e30;
  int64_t tokens = 0;
};

// Best of `repeats` passes over all docs split across n threads. Each pass uses a fresh
// tokenizer so the word cache starts cold, as it would on a new corpus.
Timing measure(const Options& o, const std::vector<std::string>& docs, int n) {
  Timing best;
  for (int r = 0; r < o.repeats; ++r) {
    auto tok = qtrain::Tokenizer::load(o.tokenizer);
    std::vector<int64_t> counts(n, 0);
    double w0 = now_wall(), c0 = now_cpu();
    std::vector<std::thread> pool;
    for (int t = 0; t < n; ++t)
      pool.emplace_back([&, t] {
        std::vector<int32_t> ids;
        for (size_t i = t; i < docs.size(); i += n) {
          ids.clear();
          tok->encode_into(docs[i], false, ids);
          counts[t] += int64_t(ids.size());
        }
      });
    for (auto& th : pool) th.join();
    best.wall = std::min(best.wall, now_wall() - w0);
    best.cpu = std::min(best.cpu, now_cpu() - c0);
    best.tokens = 0;
    for (auto c : counts) best.tokens += c;
  }
  return best;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--corpus") o.corpus = val();
    else if (a == "--tokenizer") o.tokenizer = val();
    else if (a == "--python") o.python = val();
    else if (a == "--anchors") o.anchors = val();
    else if (a == "--out") o.out = val();
    else if (a == "--repeats") o.repeats = std::stoi(val());
    else if (a == "--threads") {
      std::stringstream ss(val());
      std::string t;
      while (std::getline(ss, t, ',')) o.threads.push_back(std::stoi(t));
    } else {
      std::fprintf(stderr,
                   "usage: bench_tokenizer [--corpus DIR] [--tokenizer DIR] [--threads 1,2,4] [--repeats N]\n"
                   "                       [--anchors FILE|none | --python PY] [--out FILE]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (o.threads.empty()) {
    int hw = int(std::max(1u, std::thread::hardware_concurrency()));
    for (int t = 1; t < hw; t *= 2) o.threads.push_back(t);
    o.threads.push_back(hw);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto docs = load_docs(o.corpus);
  int64_t bytes = 0;
  for (auto& d : docs) bytes += int64_t(d.size());
  std::printf("corpus: %zu docs, %.2f MB (%s)\n", docs.size(), bytes / 1e6, o.corpus.c_str());

  json rows = json::array();
  auto row = [&](const std::string& config, const std::string& metric, double q, double anchor) {
    rows.push_back({{"config", config}, {"metric", metric}, {"qtrain", q}, {"anchor", anchor},
                    {"ratio", anchor > 0 ? q / anchor : 0.0}});
  };
  Timing one = measure(o, docs, 1);
  double q_cpu = bytes / one.cpu / 1e6, q_wall = bytes / one.wall / 1e6;

  json anchors;
  if (o.anchors == "none") {
    anchors = json::object();  // thread scaling only (a machine without the Python packages)
  } else if (!o.anchors.empty()) {
    std::ifstream f(o.anchors);
    anchors = json::parse(f);
  } else {
    anchors = run_anchors(o);
  }
  for (const char* name : {"tiktoken", "hf_tokenizers"}) {
    if (!anchors.contains(name)) {
      std::fprintf(stderr, "no %s anchor (python or package missing?)\n", name);
      continue;
    }
    const json& a = anchors[name];
    if (a.value("tokens", int64_t(-1)) != one.tokens)
      std::fprintf(stderr, "WARNING: %s made %lld tokens, qtrain %lld\n", name,
                   (long long)a.value("tokens", int64_t(-1)), (long long)one.tokens);
    row(std::string("1 thread vs ") + name, "MB/s (CPU time)", q_cpu, a["mb_s_cpu"].get<double>());
    row(std::string("1 thread vs ") + name, "MB/s (wall)", q_wall, a["mb_s_wall"].get<double>());
  }
  // Wall-clock scaling needs idle cores; on a shared machine the CPU-time figure shows
  // whether threads slow each other down (locks, shared caches): it stays flat if not.
  for (int n : o.threads) {
    Timing t = n == 1 ? one : measure(o, docs, n);
    row(std::to_string(n) + " threads vs qtrain 1 thread", "MB/s (wall)", bytes / t.wall / 1e6, q_wall);
    row(std::to_string(n) + " threads vs qtrain 1 thread", "MB/s per CPU-s", bytes / t.cpu / 1e6, q_cpu);
  }
  double load1 = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load1) != 1) load1 = 0;
    std::fclose(f);
  }

  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  json result = {{"benchmark", "tokenizer"},
                 {"device", cpu_model()},
                 {"cpu_cores", std::thread::hardware_concurrency()},
                 {"load_average_1min", load1},
                 {"date", date},
                 {"corpus", {{"path", o.corpus}, {"docs", docs.size()}, {"bytes", bytes}, {"tokens", one.tokens}}},
                 {"method", "GPT-2 byte-level BPE, one encode per document, best of " + std::to_string(o.repeats) +
                                " passes; MB/s = corpus bytes / seconds; CPU time is the fair single-core figure "
                                "on a shared machine"},
                 {"versions", {{"tiktoken", anchors.value("tiktoken_version", "")},
                               {"tokenizers", anchors.value("tokenizers_version", "")}}},
                 {"rows", rows}};
  fs::create_directories(fs::path(o.out).parent_path());
  std::ofstream(o.out) << result.dump(2) << "\n";

  std::printf("%-34s %-16s %10s %10s %7s\n", "config", "metric", "qtrain", "anchor", "ratio");
  for (auto& r : rows)
    std::printf("%-34s %-16s %10.2f %10.2f %6.2fx\n", r["config"].get<std::string>().c_str(),
                r["metric"].get<std::string>().c_str(), r["qtrain"].get<double>(), r["anchor"].get<double>(),
                r["ratio"].get<double>());
  std::printf("wrote %s\n", o.out.c_str());
  return 0;
}
