// qtrain train: fine-tune a model (full or with adapters) on a corpus.
#include <memory>

#include "launch/commands.h"
#include "models/method.h"
#include "trainer/train_loop.h"

namespace qtrain::launch {

void register_train(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "train",
      "Fine-tune a model. Writes OUT/adapter (PEFT LoRA, or OUT/model for --method full), OUT/metrics.jsonl, OUT/run.json (parameter counts, config) and an "
      "atomic OUT/checkpoint. Under mpirun every rank trains on its shard and only trainable gradients are reduced.");
  add_config_option(*sub);
  auto c = std::make_shared<TrainConfig>();
  sub->add_option("--model", c->model,
                  "HF model directory (config.json + safetensors), a .gguf file, a registered name (smollm2-135m), or "
                  "random:<shape> (random weights for benchmarks: gpt2, gpt2-medium, smollm2-135m, llama-7b, llama-13b, llama-70b)")
      ->required();
  sub->add_option("--tokenizer", c->tokenizer, "tokenizer to use instead of the model's (dir or tokenizer.json)");
  sub->add_option("--data", c->data, "training data: CodeSearchNet tree, .jsonl(.gz), .bin shards")->required();
  sub->add_option("--eval-data", c->eval_data, "evaluation data (same formats), evaluated every --eval-every and at the end");
  sub->add_option("--split", c->split, "split of a CodeSearchNet tree to train on")->capture_default_str();
  sub->add_option("--eval-split", c->eval_split, "split of --eval-data")->capture_default_str();
  sub->add_option("--format", c->format, "auto|codesearchnet|instruct|chat|text|input_ids|bin")->capture_default_str();
  sub->add_option("--fields", c->fields, "CodeSearchNet text: code | docstring-code (instruction pair)")->capture_default_str();
  sub->add_option("--method", c->method, "how the base is held and what trains:\n" + method_help())->capture_default_str();
  sub->add_option("--lora-r", c->lora_r, "LoRA rank")->capture_default_str();
  sub->add_option("--lora-alpha", c->lora_alpha, "LoRA alpha (scale = alpha / r)")->capture_default_str();
  sub->add_option("--lora-dropout", c->lora_dropout, "dropout on the LoRA input")->capture_default_str();
  sub->add_flag("--rslora", c->rslora, "rank-stabilised scale alpha / sqrt(r)");
  sub->add_option("--int8-threshold", c->int8_threshold,
                  "int8-lora: LLM.int8 outlier threshold; input columns with max |x| above it stay in F32, the rest "
                  "run as int8 x int8 (0 = no outlier columns)")
      ->check(CLI::Range(0.f, 1e6f).description("in [0, 1e6]"))
      ->capture_default_str();
  sub->add_option("--target", c->target, "modules to adapt: q_proj,v_proj,... or all-linear")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--seq-len", c->seq_len, "tokens per row")->capture_default_str();
  sub->add_option("--batch-size", c->batch_size, "rows per rank per micro-step")->capture_default_str();
  sub->add_option("--grad-accum", c->grad_accum, "micro-steps per optimizer step")->capture_default_str();
  auto* steps = sub->add_option("--steps", c->steps, "optimizer steps (overrides --epochs)");
  sub->add_option("--epochs", c->epochs, "passes over the data when --steps is not given")->capture_default_str()->excludes(steps);
  sub->add_option("--lr", c->lr, "peak learning rate")->capture_default_str();
  sub->add_option("--schedule", c->schedule, "constant | linear | cosine (HF semantics)")->capture_default_str();
  sub->add_option("--warmup", c->warmup, "linear warmup steps")->capture_default_str();
  sub->add_option("--weight-decay", c->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  sub->add_option("--clip", c->clip, "max global gradient norm (0 = off)")->capture_default_str();
  sub->add_option("--seed", c->seed, "seed for init, shuffling and dropout")->capture_default_str();
  sub->add_option("--device", c->device, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--attention", c->attention,
                  "GPU attention: auto (cuDNN fused flash attention when libcudnn.so.9 loads, else qtrain's own "
                  "kernels) | cudnn (or an error) | own")
      ->capture_default_str();
  sub->add_option("--out", c->out, "output directory")->capture_default_str();
  sub->add_option("--resume", c->resume, "continue from the checkpoint in this output directory");
  sub->add_option("--stop-at", c->stop_at, "stop after this step with a checkpoint (time-boxed jobs); resume later")
      ->capture_default_str();
  sub->add_option("--save-every", c->save_every, "checkpoint every N steps (0 = at the end)")->capture_default_str();
  sub->add_option("--eval-every", c->eval_every, "evaluate every N steps (0 = at the end)")->capture_default_str();
  sub->add_option("--eval-batches", c->eval_batches, "limit each evaluation to N batches (0 = all)")->capture_default_str();
  sub->add_flag("--grad-checkpoint", c->grad_checkpoint, "recompute each layer's activations in backward");
  sub->add_flag("--profile-kernels", c->profile_kernels,
                "GPU time by kernel and kernel class from step 3 to the end (CUPTI, loaded at run time); "
                "printed and written to OUT/kernel_profile.json");
  sub->add_flag("!--no-pack", c->pack, "one document per row (padded) instead of packing documents with EOS");
  sub->add_option("--bucket-mb", c->bucket_mb, "gradient all-reduce bucket size")->capture_default_str();
  sub->add_option("--comm-timeout", c->comm_timeout, "seconds before a stuck collective aborts the job")->capture_default_str();
  sub->add_flag("!--no-bind", c->bind, "do not bind ranks to cores near their GPU (hwloc)");
  sub->add_option("--log-every", c->log_every, "log a line every N steps when not on a terminal")->capture_default_str();
  sub->callback([&run, c] { run = [c] { return run_training(*c); }; });
}

}  // namespace qtrain::launch
