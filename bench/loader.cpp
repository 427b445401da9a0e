// bench_loader: tokens/s that data/Stream delivers to one rank, on one core
// (CPU time of the whole process: the loader thread does all the work), from
//   - the CodeSearchNet train split (gzip JSON lines: inflate, JSON, BPE, pack, shuffle),
//   - the same split pre-tokenized into .bin shards,
// each for rank 0 of world 1 and of world 8 (which skims the other ranks' rows).
// The anchor is the target, 20x what a SmolLM2-135M trainer consumes; that
// consumption is an ESTIMATE until the trainer measures it: 6*N FLOPs/token at
// 160 TFLOP/s effective bf16 on one H100 = ~200k tokens/s, so 20x = 4.0M tokens/s.
// Run from the repo root: build/bench_loader. Writes bench/results/loader.json.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/host_info.h"
#include "data/shard_writer.h"
#include "data/stream.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using qtrain::bench::cpu_model;
using qtrain::bench::now_cpu;
using qtrain::bench::now_wall;

constexpr double kTargetTokensPerSec = 20 * 200e3;



struct Measure {
  double cpu_tok_s, wall_tok_s;
  int64_t tokens;
};

Measure measure(qtrain::StreamConfig cfg, std::shared_ptr<const qtrain::Tokenizer> tok, int steps) {
  qtrain::Stream s(cfg, tok);
  s.next();  // warm: first fill of the shuffle buffer, thread start
  double c0 = now_cpu(), w0 = now_wall();
  int64_t tokens = 0;
  for (int i = 0; i < steps; ++i) tokens += int64_t(s.next().inputs.size());
  double c = now_cpu() - c0, w = now_wall() - w0;
  return {tokens / c, tokens / w, tokens};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string csn = "../shared/data/codesearchnet-format";
  auto tok = std::shared_ptr<const qtrain::Tokenizer>(qtrain::Tokenizer::load("../shared/data/gpt2-tokenizer"));
  fs::path shards = fs::temp_directory_path() / "qtrain_bench_loader_shards";
  fs::remove_all(shards);
  qtrain::ShardJob job;
  job.path = csn;
  job.out_dir = shards.string();
  qtrain::write_token_shards(job, tok);

  json rows = json::array();
  std::printf("%-34s %14s %14s %8s\n", "config", "tok/s (CPU)", "tok/s (wall)", "x target");
  for (const char* src : {"codesearchnet .jsonl.gz", ".bin shards"}) {
    for (int world : {1, 8}) {
      qtrain::StreamConfig c;
      c.path = std::string(src)[0] == '.' ? shards.string() : csn;
      c.seq_len = 512;
      c.batch_size = 8;
      c.world = world;
      c.seed = 1;
      c.loader_threads = 1;  // the one-core figure
      // world 8 skims 7 ranks' rows per step: fewer steps fit in the same time
      Measure m = measure(c, tok, world == 1 ? 600 : 80);
      std::string config = std::string(src) + ", rank 0 of " + std::to_string(world);
      std::printf("%-34s %14.0f %14.0f %8.2f\n", config.c_str(), m.cpu_tok_s, m.wall_tok_s,
                  m.cpu_tok_s / kTargetTokensPerSec);
      rows.push_back({{"config", config + " (seq 512, batch 8, shuffle)"},
                      {"metric", "tokens/s delivered, 1 core (CPU time)"},
                      {"qtrain", m.cpu_tok_s},
                      {"anchor", kTargetTokensPerSec},
                      {"ratio", m.cpu_tok_s / kTargetTokensPerSec}});
      rows.push_back({{"config", config + " (seq 512, batch 8, shuffle)"},
                      {"metric", "tokens/s delivered (wall, shared 2-core machine)"},
                      {"qtrain", m.wall_tok_s},
                      {"anchor", kTargetTokensPerSec},
                      {"ratio", m.wall_tok_s / kTargetTokensPerSec}});
    }
  }
  fs::remove_all(shards);
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  json out = {{"benchmark", "loader"},
              {"device", cpu_model()},
              {"date", date},
              {"anchor_means",
               "20x the tokens/s a SmolLM2-135M trainer consumes, ESTIMATED as 200k tokens/s on one H100 "
               "(6*N FLOPs/token at 160 TFLOP/s); replace with the trainer's measured figure"},
              {"rows", rows}};
  fs::create_directories("bench/results");
  std::ofstream("bench/results/loader.json") << out.dump(2) << "\n";
  std::printf("wrote bench/results/loader.json\n");
  return 0;
}
