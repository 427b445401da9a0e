#include "trainer/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "kernels/error.h"
#include "models/adapters/lora_patterns.h"
#include "models/method.h"

namespace qtrain {

// One list of (key, member) pairs drives both directions, so a new field
// cannot be saved and then silently dropped on resume.
template <class J, class C, class F>
static void for_each_field(J& j, C& c, F&& f) {
  f(j, "model", c.model);
  f(j, "tokenizer", c.tokenizer);
  f(j, "data", c.data);
  f(j, "eval_data", c.eval_data);
  f(j, "split", c.split);
  f(j, "eval_split", c.eval_split);
  f(j, "format", c.format);
  f(j, "fields", c.fields);
  f(j, "method", c.method);
  f(j, "lora_r", c.lora_r);
  f(j, "lora_alpha", c.lora_alpha);
  f(j, "lora_dropout", c.lora_dropout);
  f(j, "rslora", c.rslora);
  f(j, "lora_rank_pattern", c.lora_rank_pattern);
  f(j, "lora_alpha_pattern", c.lora_alpha_pattern);
  f(j, "blora_lambda", c.blora_lambda);
  f(j, "qablora_tile", c.qablora_tile);
  f(j, "adapter_type", c.adapter_type);
  f(j, "dora", c.dora);
  f(j, "ia3_feedforward", c.ia3_feedforward);
  f(j, "int8_threshold", c.int8_threshold);
  f(j, "bitnet_warmup", c.bitnet_warmup);
  f(j, "bitnet_subln", c.bitnet_subln);
  f(j, "qat_steps", c.qat_steps);
  f(j, "loftq_iters", c.loftq_iters);
  f(j, "hqq_bits", c.hqq_bits);
  f(j, "lowra_bits", c.lowra_bits);
  f(j, "target", c.target);
  f(j, "seq_len", c.seq_len);
  f(j, "batch_size", c.batch_size);
  f(j, "grad_accum", c.grad_accum);
  f(j, "steps", c.steps);
  f(j, "epochs", c.epochs);
  f(j, "lr", c.lr);
  f(j, "schedule", c.schedule);
  f(j, "warmup", c.warmup);
  f(j, "weight_decay", c.weight_decay);
  f(j, "clip", c.clip);
  f(j, "seed", c.seed);
  f(j, "device", c.device);
  f(j, "attention", c.attention);
  f(j, "grad_checkpoint", c.grad_checkpoint);
  f(j, "offload_checkpoints", c.offload_checkpoints);
  f(j, "memory_check", c.memory_check);
  f(j, "memory_budget", c.memory_budget);
  f(j, "pack", c.pack);
  f(j, "group_by_length", c.group_by_length);
  f(j, "source_max_len", c.source_max_len);
  f(j, "target_max_len", c.target_max_len);
  f(j, "save_every", c.save_every);
  f(j, "eval_every", c.eval_every);
  f(j, "eval_batches", c.eval_batches);
  f(j, "keep_checkpoints", c.keep_checkpoints);
  f(j, "on_nonfinite", c.on_nonfinite);
  f(j, "max_nonfinite_skips", c.max_nonfinite_skips);
  f(j, "collapse_steps", c.collapse_steps);
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for_each_field(j, c, [](nlohmann::json& out, const char* key, const auto& v) { out[key] = v; });
  // --steps and --epochs exclude each other: a run of a fixed step count records
  // no epochs, so its recorded config replays as a --config file
  if (c.steps > 0) j.erase("epochs");
  return j;
}

void from_json(const nlohmann::json& j, TrainConfig& c) {
  for_each_field(j, c, [](const nlohmann::json& in, const char* key, auto& v) {
    if (!in.contains(key)) return;
    try {
      in.at(key).get_to(v);
    } catch (const nlohmann::json::exception&) {
      throw Error(std::string("checkpoint config: field '") + key + "' has the wrong type");
    }
  });
}

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void need(bool ok, const std::string& what) {
  if (!ok) throw Error(what);
}

}  // namespace

void check_method_options(const TrainConfig& c) {
  const std::string& m = c.method;
  const bool recipe = m == "qlora-bitnet";  // QLoRA, then BitNet QAT (launch/recipe_qlora_bitnet.cpp)
  const Method* method = nullptr;
  if (!recipe) {
    const auto names = method_names();
    if (std::find(names.begin(), names.end(), m) == names.end()) return;  // the model build names an unknown --method
    method = &find_method(m);
  }
  const bool trains_base = method && method->trains_base;
  const std::string explicit_adapter = c.dora ? "dora" : c.adapter_type;
  // --method dora / ia3 are --method lora with that adapter: another --adapter-type contradicts them.
  if ((m == "dora" || m == "ia3") && !explicit_adapter.empty() && explicit_adapter != m)
    throw Error("--method " + m + " --adapter-type " + explicit_adapter + " disagree: --method " + m +
                " is --method lora --adapter-type " + m + "; give one of them");
  const std::string adapter = trains_base ? "" : !explicit_adapter.empty() ? explicit_adapter : method ? method->adapter : "lora";
  const TrainConfig d;
  auto only = [&](bool set, bool applies, const std::string& flag, const std::string& value, const std::string& what) {
    if (set && !applies)
      throw Error(flag + " " + value + " has no effect with --method " + m +
                  (adapter.empty() ? "" : " --adapter-type " + adapter) + ": it is for " + what);
  };
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (m == n) return true;
    return false;
  };
  only(c.hqq_bits != d.hqq_bits, is({"hqq-lora"}), "--hqq-bits", std::to_string(c.hqq_bits), "--method hqq-lora");
  only(c.lowra_bits != d.lowra_bits, is({"lowra"}), "--lowra-bits", num(c.lowra_bits), "--method lowra");
  only(c.int8_threshold != d.int8_threshold, is({"int8-lora"}), "--int8-threshold", num(c.int8_threshold),
       "--method int8-lora");
  only(c.bitnet_warmup != d.bitnet_warmup, is({"bitnet", "qlora-bitnet"}), "--bitnet-warmup",
       std::to_string(c.bitnet_warmup), "--method bitnet (and qlora-bitnet)");
  only(c.qat_steps != d.qat_steps, is({"qlora-bitnet"}), "--qat-steps", std::to_string(c.qat_steps),
       "--method qlora-bitnet");
  only(c.bitnet_subln != d.bitnet_subln, is({"bitnet", "bitnet-lora", "qlora-bitnet"}), "--bitnet-subln",
       c.bitnet_subln ? "true" : "false", "--method bitnet, bitnet-lora and qlora-bitnet");
  only(c.blora_lambda != d.blora_lambda, adapter == "qblora", "--blora-lambda", std::to_string(c.blora_lambda),
       "--adapter-type qblora (--method qblora)");
  only(c.qablora_tile != d.qablora_tile, adapter == "qablora" || is({"qablora"}), "--qablora-tile",
       c.qablora_tile.size() == 2 ? std::to_string(c.qablora_tile[0]) + " " + std::to_string(c.qablora_tile[1]) : "",
       "--method qablora and --adapter-type qablora");
  only(!c.ia3_feedforward.empty(), adapter == "ia3", "--ia3-feedforward",
       c.ia3_feedforward.empty() ? "" : c.ia3_feedforward.front(),  // arguments are built before the check
       "--adapter-type ia3 (--method ia3)");
  only(c.target != d.target, !trains_base, "--target", c.target.empty() ? "" : c.target.front(),
       "adapters; --method " + m + " trains every weight");
}

void validate(const TrainConfig& c) {
  check_method_options(c);
  need(c.bitnet_warmup >= 0, "--bitnet-warmup must be >= 0 (got " + std::to_string(c.bitnet_warmup) + ")");
  need(c.qat_steps >= 0, "--qat-steps must be >= 0 (got " + std::to_string(c.qat_steps) + "; 0 = half of --steps)");
  need(!c.dora || c.adapter_type.empty() || c.adapter_type == "dora",
       "--dora and --adapter-type " + c.adapter_type + " disagree: give one of them");
  need(!c.model.empty(), "--model is required (or --resume DIR, whose checkpoint names it)");
  need(!c.data.empty(), "--data is required (or --resume DIR, whose checkpoint names it)");
  need(std::isfinite(c.lr) && c.lr > 0,
       "--lr must be a finite number > 0 (got " + num(c.lr) + "); a negative rate trains by gradient ascent");
  need(c.seq_len >= 2, "--seq-len must be at least 2 (got " + std::to_string(c.seq_len) + ")");
  need(c.batch_size >= 1 && c.grad_accum >= 1, "--batch-size and --grad-accum must be at least 1");
  need(c.steps >= 0, "--steps must be at least 1 (got " + std::to_string(c.steps) + ")");
  need(c.steps > 0 || (std::isfinite(c.epochs) && c.epochs > 0), "give --steps N > 0 or --epochs E > 0");
  need(c.warmup >= 0, "--warmup must be >= 0 (got " + std::to_string(c.warmup) + ")");
  need(c.steps == 0 || c.warmup < c.steps, "--warmup " + std::to_string(c.warmup) + " must be below --steps " +
                                               std::to_string(c.steps) + ": the learning rate would never reach --lr");
  need(std::isfinite(c.clip) && c.clip >= 0, "--clip must be >= 0 (0 = no clipping; got " + num(c.clip) + ")");
  need(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
       "--weight-decay must be a finite number >= 0 (got " + num(c.weight_decay) + ")");
  need(c.lora_dropout >= 0 && c.lora_dropout < 1, "--lora-dropout must be in [0, 1) (got " + num(c.lora_dropout) + ")");
  need(c.lora_r >= 1, "--lora-r must be at least 1 (got " + std::to_string(c.lora_r) + ")");
  need(std::isfinite(c.lora_alpha), "--lora-alpha must be finite");
  parse_lora_patterns(c.lora_rank_pattern, c.lora_alpha_pattern);  // throws naming the flag and the item
  need(!c.group_by_length || !c.pack,
       "--group-by-length needs --no-pack (packed rows are all --seq-len tokens long: nothing to group)");
  need(c.source_max_len >= 0 && c.target_max_len >= 0, "--source-max-len and --target-max-len must be >= 0 (0 = no limit)");
  need(c.pack || c.source_max_len + c.target_max_len <= c.seq_len || c.source_max_len == 0 || c.target_max_len == 0,
       "--source-max-len " + std::to_string(c.source_max_len) + " + --target-max-len " + std::to_string(c.target_max_len) +
           " exceeds --seq-len " + std::to_string(c.seq_len) + ": the rows would be cut again at --seq-len");
  need(c.loftq_iters >= -1, "--loftq-iters must be 0 (off), at least 1, or -1 (the method's default; got " +
                                std::to_string(c.loftq_iters) + ")");
  need(c.lowra_bits >= 1.0 && c.lowra_bits <= 4.0,
       "--lowra-bits must be between 1 and 4 (got " + std::to_string(c.lowra_bits) + ")");
  need(c.qablora_tile.size() == 2 && c.qablora_tile[0] >= 1 && c.qablora_tile[1] >= 2 && c.qablora_tile[1] % 2 == 0,
       "--qablora-tile takes two sizes: output rows >= 1 and an even number of input columns (e.g. 8 4)");
  need(c.blora_lambda >= 1, "--blora-lambda must be at least 1 (got " + std::to_string(c.blora_lambda) + ")");
  need(c.save_every >= 0, "--save-every must be >= 0 (0 = only at the end; got " + std::to_string(c.save_every) + ")");
  need(c.eval_every >= 0, "--eval-every must be >= 0 (0 = only at the end; got " + std::to_string(c.eval_every) + ")");
  need(c.eval_batches >= 0, "--eval-batches must be >= 0 (0 = all; got " + std::to_string(c.eval_batches) + ")");
  need(c.stop_at >= 0, "--stop-at must be >= 0 (got " + std::to_string(c.stop_at) + ")");
  need(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1 (got " + std::to_string(c.keep_checkpoints) + ")");
  need(c.on_nonfinite == "skip" || c.on_nonfinite == "stop",
       "--on-nonfinite must be skip or stop (got '" + c.on_nonfinite + "')");
  need(c.max_nonfinite_skips >= 1, "--max-nonfinite-skips must be at least 1");
  need(c.collapse_steps >= 0, "--collapse-steps must be >= 0 (0 = off)");
  need(c.log_every >= 1, "--log-every must be at least 1");
  need(std::isfinite(c.bucket_mb) && c.bucket_mb > 0, "--bucket-mb must be > 0");
  need(std::isfinite(c.memory_budget) && c.memory_budget >= 0,
       "--memory-budget must be a number of GiB > 0 (0 = the free GPU memory; got " + num(c.memory_budget) + ")");
}

void check_seq_len(const TrainConfig& c, int max_pos, const std::string& model_label) {
  if (max_pos > 0 && c.seq_len > max_pos)
    throw Error("--seq-len " + std::to_string(c.seq_len) + " exceeds the " + std::to_string(max_pos) +
                " positions of " + model_label + " (n_positions / max_position_embeddings / context_length)");
}

}  // namespace qtrain
