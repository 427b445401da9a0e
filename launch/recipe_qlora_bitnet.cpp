// `qtrain train --method qlora-bitnet`: the seeds' QLoRA -> BitNet conversion as
// one command, done the way the BitNet literature says can work. Rounding a
// QLoRA-merged model to ternary weights collapses it (bench/results/table3-*:
// perplexity in the millions); a short quantization-aware phase with lambda
// warmup recovers much of it. The phases run as child qtrain processes, each
// with its own output folder (so each can be resumed, evaluated or exported on
// its own), from the run's config written as OUT/<phase>.json:
//   OUT/qlora         --method qlora, --steps steps
//   OUT/qlora-merged  export --merge --dtype f32 (the study's conversion input)
//   (with --eval-data: the naive conversion, the merged model evaluated as BitNet)
//   OUT/bitnet        --method bitnet on the merged model, --qat-steps steps (default
//                     max(2, steps / 2)), --bitnet-warmup capped at half of them
//   OUT/ternary       export --format ternary: 2-bit storage for generate / bitnet-lora
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kernels/error.h"
#include "launch/commands.h"
#include "launch/subprocess.h"
#include "trainer/train_config.h"

namespace qtrain::launch {

namespace fs = std::filesystem;

namespace {

void run_phase(const std::string& what, const std::vector<std::string>& args) {
  spdlog::info("qlora-bitnet: {}", what);
  const int rc = run_program(args);
  if (rc != 0) throw Error("qlora-bitnet: " + what + " failed (exit " + std::to_string(rc) + "); its output is above",
                           rc == 2 ? ErrorKind::BadInput : ErrorKind::Runtime);
}

void train_phase(const std::string& self, const std::string& what, const TrainConfig& c, const std::string& file) {
  // the recorded config (what --resume restores) has the settings, not where the run goes
  std::ofstream(file) << to_json(c).dump(1) << "\n";
  std::vector<std::string> args{self, "train", "--config", file, "--out", c.out, "--device", c.device};
  if (c.overwrite) args.push_back("--overwrite");
  run_phase(what + " (" + file + ")", args);
}

}  // namespace

int run_qlora_bitnet(const TrainConfig& given) {
  // The phases replay configs written into --out, where a relative path would
  // resolve against that folder: make the paths absolute first.
  TrainConfig in = given;
  for (std::string* p : {&in.model, &in.tokenizer, &in.data, &in.eval_data})
    if (!p->empty() && fs::exists(*p)) *p = fs::absolute(*p).string();
  const char* world = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (world && std::atoi(world) > 1)
    throw Error("--method qlora-bitnet runs its phases as child processes: start it without mpirun (each phase is "
                "a plain train / export you can also run under mpirun yourself: see its --help)");
  if (!in.resume.empty())
    throw Error("--method qlora-bitnet: resume the phase that stopped instead (qtrain train --resume " + in.resume +
                "/qlora or " + in.resume + "/bitnet), then run the exports its log lists");
  if (in.steps <= 0) throw Error("--method qlora-bitnet needs --steps (the QLoRA phase; the BitNet phase runs --qat-steps, default half as many)");
  if (in.out.empty()) throw Error("--method qlora-bitnet needs --out");
  std::error_code ec;
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) throw Error("qlora-bitnet: cannot find the qtrain executable (/proc/self/exe)", ErrorKind::Runtime);
  fs::create_directories(in.out);
  const std::string out = fs::absolute(in.out).string();
  // The merged folder of a GGUF base or registered name has no tokenizer: keep the base's.
  const bool dir = fs::is_directory(in.model, ec);
  const std::string tok = !in.tokenizer.empty() || dir || in.model.rfind("random:", 0) == 0 ? in.tokenizer : in.model;

  check_method_options(in);
  // Each phase gets only the options its method reads (a phase refuses the others).
  const TrainConfig defaults;
  TrainConfig q = in;
  q.method = "qlora";
  q.bitnet_warmup = defaults.bitnet_warmup;
  q.bitnet_subln = defaults.bitnet_subln;
  q.qat_steps = defaults.qat_steps;
  q.out = out + "/qlora";
  train_phase(self, "QLoRA, " + std::to_string(q.steps) + " steps", q, out + "/qlora.json");

  const std::string merged = out + "/qlora-merged";
  std::vector<std::string> merge{self, "export", "--model", in.model, "--adapter", q.out + "/adapter",
                                 "--method", "qlora", "--merge", "--dtype", "f32", "--out", merged};
  if (in.overwrite) merge.push_back("--overwrite");  // exports refuse a non-empty --out otherwise
  run_phase("merge the adapter into F32 weights", merge);
  if (!in.eval_data.empty()) {
    std::vector<std::string> ev{self, "eval", "--model", merged, "--method", "bitnet", "--data", in.eval_data,
                                "--split", in.eval_split, "--format", in.format, "--fields", in.fields,
                                "--seq-len", std::to_string(in.seq_len), "--batch-size", std::to_string(in.batch_size),
                                "--max-batches", std::to_string(in.eval_batches), "--device", in.device};
    if (!tok.empty()) ev.insert(ev.end(), {"--tokenizer", tok});
    run_phase("the naive conversion: the merged model rounded to ternary, no training (the study's row)", ev);
  }

  TrainConfig b = in;
  b.model = merged;
  b.tokenizer = tok;
  b.method = "bitnet";
  b.target = defaults.target;  // the adapter options were the QLoRA phase's
  b.adapter_type = defaults.adapter_type;
  b.dora = defaults.dora;
  b.ia3_feedforward = defaults.ia3_feedforward;
  b.blora_lambda = defaults.blora_lambda;
  b.qablora_tile = defaults.qablora_tile;
  b.loftq_iters = defaults.loftq_iters;
  // Half of --steps by default: on SmolLM2-135M a quarter (the default before) reached 136 perplexity and
  // half 37.7, where the bitnet row's whole budget from the same pretrained weights reached 19 (bench/results/table3-*).
  b.steps = in.qat_steps > 0 ? in.qat_steps : std::max<int64_t>(2, in.steps / 2);
  b.qat_steps = defaults.qat_steps;
  b.bitnet_warmup = std::min<int64_t>(in.bitnet_warmup, b.steps / 2);
  b.out = out + "/bitnet";
  train_phase(self, "BitNet QAT on the merged model, " + std::to_string(b.steps) + " steps, lambda warmup " +
                        std::to_string(b.bitnet_warmup), b, out + "/bitnet.json");

  std::vector<std::string> ternary{self, "export", "--model", b.out + "/model", "--method", "bitnet", "--format",
                                   "ternary", "--bitnet-subln", in.bitnet_subln ? "true" : "false", "--out",
                                   out + "/ternary"};
  if (in.overwrite) ternary.push_back("--overwrite");
  run_phase("2-bit ternary export", ternary);
  // The exported folders of a GGUF base carry no tokenizer: the command to run the result names the base's.
  spdlog::info("qlora-bitnet: done. QLoRA adapter {}/qlora/adapter, merged {}, BitNet model {}/model, ternary {}/ternary "
               "(qtrain generate --model {}/ternary --method bitnet-lora{})", out, merged, b.out, out, out,
               tok.empty() ? "" : " --tokenizer " + tok);
  return 0;
}

}  // namespace qtrain::launch
