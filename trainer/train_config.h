// Everything a training run is told: the `qtrain train` flags (launch/cmd_train.cpp)
// and the `config` block of every checkpoint, so a resumed run can check it is
// continuing the same job.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qtrain {

struct TrainConfig {
  std::string model;            // HF dir, .gguf, or a registered name (smollm2-135m)
  std::string tokenizer;        // overrides the model's tokenizer ("" = the model's)
  std::string data, eval_data;
  std::string split = "train", eval_split = "valid";
  std::string format = "auto", fields = "code";
  std::string method = "lora";
  int lora_r = 8;
  float lora_alpha = 16.f;
  float lora_dropout = 0.f;
  bool rslora = false;
  // "KEY=VALUE" items, in order: peft's rank_pattern / alpha_pattern (models/adapters/lora_patterns.h)
  std::vector<std::string> lora_rank_pattern, lora_alpha_pattern;
  int blora_lambda = 2;         // Q-BLoRA balance factor
  std::vector<int> qablora_tile{8, 4};  // QA-BLoRA tile: output rows, input columns
  std::string adapter_type;     // "" = the method's (lora); dora | ia3 | lora
  bool dora = false;            // shorthand for adapter_type = dora
  std::vector<std::string> ia3_feedforward;  // IA3's input-scaled modules; empty = peft's default for the model
  float int8_threshold = 6.f;   // int8-lora: LLM.int8 outlier threshold (0 = off)
  int64_t bitnet_warmup = 100;  // bitnet: steps over which ternary weights / 8-bit activations blend in
  bool bitnet_subln = true;     // bitnet: RMSNorm on each BitLinear's input
  int64_t qat_steps = 0;        // qlora-bitnet: the BitNet QAT phase's steps (0 = half of --steps)
  int loftq_iters = -1;         // LoftQ initialisation rounds (models/loftq.h); 0 = off, -1 = the method's (lowra: 5)
  int hqq_bits = 4;             // hqq-lora: 4 or 2
  double lowra_bits = 2.0;      // lowra: average code bits per base weight
  std::vector<std::string> target{"all-linear"};
  int seq_len = 512;
  int batch_size = 8;           // per rank
  int grad_accum = 1;
  int64_t steps = 0;            // 0 = not given: train --epochs (an explicit --steps 0 is refused at the CLI)
  double epochs = 1.0;
  double lr = 2e-4;
  std::string schedule = "constant";
  int64_t warmup = 0;
  double weight_decay = 0.0;
  double clip = 1.0;
  uint64_t seed = 0;
  std::string device = "auto";
  std::string attention = "auto";  // GPU attention: auto | cudnn | own (kernels/attention.h)
  std::string out = "out";
  std::string resume;
  bool overwrite = false;       // allow a fresh run into an --out that holds an earlier run's outputs
  int keep_checkpoints = 1;     // checkpoints kept: the newest as checkpoint/, older ones as checkpoint-step<N>/
  std::string on_nonfinite = "skip";  // skip | stop: a step whose loss or gradient norm is inf/nan
  int max_nonfinite_skips = 10; // stop after this many consecutive skipped steps
  int collapse_steps = 3;       // stop after this many consecutive collapsed steps (0 = no collapse check)
  int64_t stop_at = 0;          // >0: stop (with a checkpoint) after this step, as a time-boxed job would
  int64_t save_every = 0;       // 0 = only at the end
  int64_t eval_every = 0;       // 0 = only at the end (when --eval-data is given)
  int64_t eval_batches = 0;     // 0 = the whole eval split
  bool grad_checkpoint = false;
  bool offload_checkpoints = false;  // GPU: recomputed layers' inputs in pinned host memory (ModelOptions)
  bool memory_check = true;     // GPU: refuse a run whose estimated memory exceeds the free memory (trainer/memory_plan.h)
  double memory_budget = 0;     // GiB per rank the activation plan fits in (0 = the free GPU memory less 3%; CPU: none)
  bool pack = true;
  bool group_by_length = false; // with pack=false: batches of similar lengths (runs of 50 global batches sorted)
  int source_max_len = 0;       // instruction data: prompt tokens kept (QLoRA's source_max_len; 0 = all)
  int target_max_len = 0;       // ... and response tokens kept, EOS included (target_max_len; 0 = all)
  double bucket_mb = 25.0;
  int comm_timeout = 300;
  bool bind = true;
  int log_every = 10;
  bool profile_kernels = false; // GPU time by kernel from step 3 on (CUPTI) -> OUT/kernel_profile.json
};

// The config as a checkpoint's `config` block and run.json's; from_json reads
// it back (keys missing from an older checkpoint keep their defaults).
nlohmann::json to_json(const TrainConfig& c);
void from_json(const nlohmann::json& j, TrainConfig& c);

// Refuses settings that would train garbage without a word (BadInput naming
// the flag): a learning rate that is not a finite positive number, negative
// counts, --warmup at or past --steps, and so on.
void validate(const TrainConfig& c);
// Options that only some methods or adapters read, set (away from their
// defaults) for another: refused, since they would be ignored without a word.
void check_method_options(const TrainConfig& c);
// --seq-len against the model's position limit (max_pos 0 = no limit known).
void check_seq_len(const TrainConfig& c, int max_pos, const std::string& model_label);

}  // namespace qtrain
