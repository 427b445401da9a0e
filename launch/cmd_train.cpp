// qtrain train: fine-tune a model (full or with adapters) on a corpus.
#include <memory>
#include <set>
#include <string>

#include "launch/commands.h"
#include "models/adapters/adapter_type.h"
#include "models/method.h"
#include "trainer/resume_config.h"
#include "trainer/train_loop.h"

namespace qtrain::launch {

void register_train(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "train",
      "Fine-tune a model. Writes OUT/adapter (PEFT LoRA, or OUT/model for --method full), OUT/metrics.jsonl, OUT/run.json (parameter counts, config) and an "
      "atomic OUT/checkpoint. Under mpirun every rank trains on its shard and only trainable gradients are reduced. "
      "SIGTERM, SIGINT or SIGUSR1 (SLURM's warning) stop the run after the current step with a checkpoint (exit "
      "128+signal; a second signal exits at once); continue with --resume OUT.");
  add_config_option(*sub);
  auto c = std::make_shared<TrainConfig>();
  sub->add_option("--model", c->model,
                  "HF model directory (config.json + safetensors), a .gguf file, a registered name (smollm2-135m), or "
                  "random:<shape> (random weights for benchmarks: gpt2, gpt2-medium, smollm2-135m, llama-7b, llama-13b, llama-70b); "
                  "required unless --resume");
  sub->add_option("--tokenizer", c->tokenizer, "tokenizer to use instead of the model's: a dir, tokenizer.json, .gguf file or registered model name");
  sub->add_option("--data", c->data, "training data: CodeSearchNet tree, .jsonl(.gz), .bin shards; required unless --resume");
  sub->add_option("--eval-data", c->eval_data, "evaluation data (same formats), evaluated every --eval-every and at the end");
  sub->add_option("--split", c->split, "split of a CodeSearchNet tree to train on")->capture_default_str();
  sub->add_option("--eval-split", c->eval_split, "split of --eval-data")->capture_default_str();
  sub->add_option("--format", c->format,
                  "auto|codesearchnet|instruct|chat|text|input_ids|bin; auto reads .bin files as token shards and "
                  "each JSON line by its fields: input_ids, messages or chosen (chat), instruction (instruct), code, "
                  "text")
      ->capture_default_str();
  sub->add_option("--fields", c->fields, "CodeSearchNet text: code | docstring-code (instruction pair)")->capture_default_str();
  sub->add_option("--method", c->method,
                  "how the base is held and what trains:\n" + method_help() +
                      "\n  qlora-bitnet: a recipe, not a base: QLoRA for --steps, merge, BitNet QAT on the merged model "
                      "for --qat-steps (default half of --steps; --bitnet-warmup capped at half of them), ternary export; phases in OUT/qlora, "
                      "OUT/qlora-merged, OUT/bitnet, OUT/ternary (with --eval-data the naive rounding is scored too)")
      ->capture_default_str();
  sub->add_option("--lora-r", c->lora_r, "LoRA rank")->capture_default_str();
  sub->add_option("--lora-alpha", c->lora_alpha, "LoRA alpha (scale = alpha / r)")->capture_default_str();
  sub->add_option("--lora-dropout", c->lora_dropout, "dropout on the LoRA input")->capture_default_str();
  sub->add_flag("--rslora", c->rslora, "rank-stabilised scale alpha / sqrt(r) (LoRA and DoRA)");
  sub->add_option("--lora-rank-pattern", c->lora_rank_pattern,
                  "per-module ranks (peft's rank_pattern): KEY=R,... where KEY is a regex matched against the end "
                  "of the module path, as peft does: down_proj=16 sets every down_proj, layers.0.mlp.down_proj=16 "
                  "only layer 0's. The first matching KEY wins; other modules keep --lora-r. In a config file also "
                  "an object {\"down_proj\": 16}")
      ->delimiter(',');
  sub->add_option("--lora-alpha-pattern", c->lora_alpha_pattern,
                  "per-module alphas (peft's alpha_pattern): KEY=ALPHA,... matched like --lora-rank-pattern; "
                  "other modules keep --lora-alpha")
      ->delimiter(',');
  sub->add_option("--blora-lambda", c->blora_lambda,
                  "Q-BLoRA (--adapter-type qblora, --method qblora): pool the adapter input and repeat its output "
                  "by this factor at rank lambda * --lora-r (the paper: 2 for LLaMA, 8 for Mistral/Gemma)")
      ->capture_default_str();
  sub->add_option("--qablora-tile", c->qablora_tile,
                  "QA-BLoRA (--method qablora): the tile of output rows and input columns that one adapter entry and "
                  "one 4-bit scale + zero cover (the paper: 8 4 for 32-weight blocks, 8 8 for 64)")
      ->expected(2)
      ->capture_default_str();
  sub->add_option("--adapter-type", c->adapter_type,
                  "the adapter on each targeted module, on whatever base --method holds (default: the method's, "
                  "lora):\n" + adapter_type_help());
  sub->add_flag("--dora", c->dora, "same as --adapter-type dora");
  sub->add_option("--ia3-feedforward", c->ia3_feedforward,
                  "IA3: modules scaled on their input rather than their output, as peft's feedforward_modules "
                  "(default: down_proj on LLaMA, mlp.c_proj on GPT-2); IA3's --target defaults to peft's too "
                  "(k_proj,v_proj,down_proj / c_attn,mlp.c_proj)")
      ->delimiter(',');
  sub->add_option("--int8-threshold", c->int8_threshold,
                  "int8-lora: LLM.int8 outlier threshold; input columns with max |x| above it stay in F32, the rest "
                  "run as int8 x int8 (0 = no outlier columns)")
      ->check(CLI::Range(0.f, 1e6f).description("in [0, 1e6]"))
      ->capture_default_str();
  sub->add_option("--bitnet-warmup", c->bitnet_warmup,
                  "bitnet: steps over which ternary weights and 8-bit activations blend in (lambda 0 -> 1: "
                  "w + lambda (quant(w) - w)); 0 switches at once, which a pretrained model does not survive")
      ->capture_default_str();
  sub->add_option("--qat-steps", c->qat_steps,
                  "qlora-bitnet: steps of the BitNet QAT phase on the merged model (0 = half of --steps; on SmolLM2-135M "
                  "a quarter of the budget reached 136 perplexity, half 37.7: bench/results/table3-*)")
      ->capture_default_str();
  sub->add_option("--bitnet-subln", c->bitnet_subln, "bitnet: RMSNorm on each BitLinear's input (SubLN)")
      ->capture_default_str();
  sub->add_option("--loftq-iters", c->loftq_iters,
                  "LoftQ initialisation (Li et al. 2023, as peft's loftq_init) with N rounds (0 = off, -1 = the method's "
                  "default: 5 for lowra, 0 for the others): alternately "
                  "quantize W - B A with the method's quantizer and take the rank-r SVD of W - Q (LAPACK), so the "
                  "quantized base and the LoRA start B A together approximate the float weight. Needs a method that "
                  "quantizes on load (qlora, nf4-lora, qlora-fp4, int8-lora, hqq-lora, lowra) and --adapter-type lora; as in peft "
                  "lora_B A is not divided by the LoRA scale, so use --lora-alpha equal to --lora-r (scale 1) for "
                  "the exact LoftQ start. One SVD per round per module: slow on large models. The adapter fits "
                  "the LoftQ base: give eval/export/generate the same --loftq-iters")
      ->check(CLI::Range(-1, 1000))
      ->capture_default_str();
  sub->add_option("--hqq-bits", c->hqq_bits, "hqq-lora: bits per base weight, 4 or 2")
      ->check(CLI::IsMember({4, 2}))
      ->capture_default_str();
  sub->add_option("--lowra-bits", c->lowra_bits,
                  "lowra: average code bits per base weight over all quantized Linear layers (1 to 4; each output "
                  "channel gets 1, 2 or 4 bits, 2 and 4 only at 2 bits and above, as the paper does for LLaMA)")
      ->check(CLI::Range(1.0, 4.0))
      ->capture_default_str();
  sub->add_option("--target", c->target, "modules to adapt: q_proj,v_proj,... (a module's name or a dotted suffix of its path, as peft "
                  "matches target_modules: mlp.c_proj) or all-linear; a name that matches no module is an error")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--seq-len", c->seq_len, "tokens per row (at most the model's positions)")->capture_default_str();
  sub->add_option("--batch-size", c->batch_size, "rows per rank per micro-step")->capture_default_str();
  sub->add_option("--grad-accum", c->grad_accum, "micro-steps per optimizer step")->capture_default_str();
  auto* steps = sub->add_option("--steps", c->steps,
                                "optimizer steps, at least 1 (overrides --epochs; without it the run is --epochs "
                                "passes over the data, counted before training starts)")
                    ->check(CLI::Validator(
                        [](std::string& v) {
                          return v.find_first_not_of("0123456789") == std::string::npos && v.find_first_not_of('0') != std::string::npos
                                     ? std::string()
                                     : "--steps must be a whole number of at least 1 (got " + v + "); leave it out to train --epochs";
                        },
                        "INT>0"));
  sub->add_option("--epochs", c->epochs, "passes over the data when --steps is not given")->capture_default_str()->excludes(steps);
  sub->add_option("--lr", c->lr,
                  "peak learning rate (a finite number > 0). BitNet QAT from a pretrained model (bitnet, qlora-bitnet) "
                  "wants far more than the default: on SmolLM2-135M over 2M tokens 4e-3 was best and 2e-4 gave about 4x the "
                  "perplexity (bench/table3's rate sweep)")
      ->capture_default_str();
  sub->add_option("--schedule", c->schedule, "constant | linear | cosine (HF semantics)")->capture_default_str();
  sub->add_option("--warmup", c->warmup, "linear warmup steps (fewer than --steps)")->capture_default_str();
  sub->add_option("--weight-decay", c->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  sub->add_option("--clip", c->clip, "max global gradient norm (0 = off; not negative)")->capture_default_str();
  sub->add_option("--seed", c->seed, "seed (>= 0) for init, shuffling and dropout")
      ->check(seed_check())
      ->capture_default_str();
  sub->add_option("--device", c->device, "auto (cuda when a GPU is usable, else cpu) | cpu | cuda")->capture_default_str();
  sub->add_option("--attention", c->attention,
                  "GPU attention: auto (cuDNN fused flash attention when libcudnn.so.9 loads, else qtrain's own "
                  "kernels) | cudnn (or an error) | own")
      ->capture_default_str();
  sub->add_option("--out", c->out, "output directory")->capture_default_str();
  sub->add_option("--resume", c->resume,
                  "continue the run whose checkpoint is in this output directory (or this checkpoint directory). "
                  "Its settings come from the checkpoint, so --resume DIR alone is enough; options given with it "
                  "override them (each change is logged), and --out defaults to DIR");
  sub->add_flag("--overwrite", c->overwrite,
                "start afresh in an --out that holds an earlier run's checkpoint, adapter or model (they are "
                "removed); without it such a run is refused");
  sub->add_option("--keep-checkpoints", c->keep_checkpoints,
                  "checkpoints to keep: the newest in OUT/checkpoint, older ones as OUT/checkpoint-step<N> "
                  "(each resumable with --resume)")
      ->capture_default_str();
  sub->add_option("--on-nonfinite", c->on_nonfinite,
                  "a step whose loss or gradient is inf/nan: skip (drop the update, count it as nonfinite_skipped "
                  "in metrics.jsonl) | stop (exit 1 at once)")
      ->check(CLI::IsMember({"skip", "stop"}))
      ->capture_default_str();
  sub->add_option("--max-nonfinite-skips", c->max_nonfinite_skips,
                  "with --on-nonfinite skip: exit 1 after this many skipped steps in a row")
      ->capture_default_str();
  sub->add_option("--collapse-steps", c->collapse_steps,
                  "exit 1 when the gradient norm is exactly 0, the loss sits at ln(vocab) after being well "
                  "below it, or the loss is above 3 ln(vocab) after being below, for this many steps in a row (a "
                  "collapsed or diverged model), or when the first this-many steps hold no token in the loss (every "
                  "response cut off by --seq-len: the run trains nothing); 0 = no check. The last checkpoint is kept")
      ->capture_default_str();
  sub->add_option("--stop-at", c->stop_at, "stop after this step with a checkpoint (time-boxed jobs); resume later")
      ->capture_default_str();
  sub->add_option("--save-every", c->save_every, "checkpoint every N steps (0 = only at the end and when stopped by a signal)")->capture_default_str();
  sub->add_option("--eval-every", c->eval_every, "evaluate every N steps (0 = at the end)")->capture_default_str();
  sub->add_option("--eval-batches", c->eval_batches, "limit each evaluation to N batches (0 = all)")->capture_default_str();
  sub->add_flag("--grad-checkpoint", c->grad_checkpoint,
                "recompute every layer's activations in backward (the least memory; about a third more GEMM work), "
                "whatever --memory-budget allows");
  sub->add_flag("--offload-checkpoints", c->offload_checkpoints,
                "GPU: park the input of each layer recomputed in backward (--grad-checkpoint, or the layers "
                "--memory-budget's plan recomputes) in pinned host memory from its forward to its backward, "
                "so the GPU holds two of them instead of one per layer: (layers - 2) x batch x seq x d_model x 2 "
                "bytes less GPU memory for as much host RAM. The copies overlap the next layer's work; "
                "results are identical. Ignored on the CPU");
  sub->add_option("--memory-budget", c->memory_budget,
                  "GiB per rank the run may use (0 = on the GPU, the free memory less 3%; on the CPU, no plan: keep "
                  "everything). Before step 1 the activations are planned from the model shape, method, batch and "
                  "seq: every layer keeps what its backward reads if that fits; else layers keep only their GEMM "
                  "outputs (norms and SwiGLU/GELU are redone in backward, nearly free), then the first layers are "
                  "recomputed whole, as few as fit. The plan is logged and written to run.json; a run that does not "
                  "fit even recomputing every layer is refused, saying what to change")
      ->capture_default_str();
  sub->add_flag("!--no-memory-check", c->memory_check,
                "start even when the memory estimate (weights, optimizer, activations for the batch) exceeds "
                "--memory-budget with every layer recomputed, or the free GPU memory; without it such a run is "
                "refused before loading, saying what to change");
  sub->add_flag("--profile-kernels", c->profile_kernels,
                "GPU time by kernel and kernel class from step 3 to the end (CUPTI, loaded at run time); "
                "printed and written to OUT/kernel_profile.json");
  sub->add_flag("!--no-pack", c->pack, "one document per row (padded) instead of packing documents with EOS");
  sub->add_flag("--group-by-length", c->group_by_length,
                "with --no-pack: sort each run of 50 global batches of documents by length, longest first, so a "
                "batch holds similar lengths and pads little (HF/QLoRA group_by_length; the loss curve oscillates)");
  sub->add_option("--source-max-len", c->source_max_len,
                  "instruction/chat data: keep at most this many prompt tokens (those out of the loss), the first "
                  "ones, as QLoRA's source_max_len (0 = all)")
      ->capture_default_str();
  sub->add_option("--target-max-len", c->target_max_len,
                  "... and at most this many response tokens (in the loss, EOS included), as QLoRA's "
                  "target_max_len; each is cut before they are joined (0 = all). Code and plain text have no prompt: "
                  "all of a record is response, so this cuts it too")
      ->capture_default_str();
  sub->add_option("--bucket-mb", c->bucket_mb, "gradient all-reduce bucket size")->capture_default_str();
  sub->add_option("--comm-timeout", c->comm_timeout, "seconds before a stuck collective aborts the job")->capture_default_str();
  sub->add_flag("!--no-bind", c->bind, "do not bind ranks to cores near their GPU (hwloc)");
  sub->add_option("--log-every", c->log_every, "log a line every N steps when not on a terminal")->capture_default_str();
  sub->callback([&run, c, sub] {
    // The options set explicitly (on the command line or by --config), under
    // their config names: with --resume they override the checkpoint's.
    std::set<std::string> given;
    for (const CLI::Option* o : sub->get_options()) {
      if (o->count() == 0 || o->get_lnames().empty()) continue;
      std::string key = o->get_lnames().front();
      if (key.rfind("no-", 0) == 0) key = key.substr(3);  // --no-pack sets pack
      for (auto& ch : key)
        if (ch == '-') ch = '_';
      given.insert(key);
    }
    run = [c, given] {
      if (c->method == kQloraBitnetRecipe) return run_qlora_bitnet(*c);
      return run_training(merge_resume_config(*c, given));
    };
  });
}

}  // namespace qtrain::launch
