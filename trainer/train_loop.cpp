#include "trainer/train_loop.h"

#include "models/merged_model.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <filesystem>
#include <fstream>
#include <optional>

#include "data/chat_format.h"
#include "data/corpus_files.h"
#include "dist/binding.h"
#include "dist/bootstrap.h"
#include "dist/grad_reducer.h"
#include "kernels/attention.h"
#include "kernels/device.h"
#include "kernels/elementwise.h"
#include "models/merged_model.h"
#include "trainer/checkpoint.h"
#include "trainer/durable_io.h"
#include "trainer/evaluate.h"
#include "trainer/grad_clip.h"
#include "trainer/kernel_report.h"
#include "trainer/memory_plan.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"
#include "trainer/output_dir.h"
#include "trainer/progress.h"
#include "trainer/resume_config.h"
#include "trainer/schedule.h"
#include "trainer/setup.h"
#include "trainer/stop_signals.h"
#include "trainer/training_health.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

StreamSpec stream_spec(const TrainConfig& c, const std::string& path, const std::string& split, bool train) {
  StreamSpec s;
  s.path = path;
  s.split = split;
  s.format = c.format;
  s.fields = c.fields;
  s.seq_len = c.seq_len;
  s.batch_size = c.batch_size;
  s.seed = c.seed;
  s.pack = c.pack;
  s.group_by_length = train && c.group_by_length;  // evaluation reads in order, as HF's does
  s.source_max_len = c.source_max_len;
  s.target_max_len = c.target_max_len;
  s.train = train;
  return s;
}

// Steps in one epoch at this global batch: one pass over the data, counting.
// --eval-data that resolves to files of the training data (the same file, or a flat directory whose
// names mention no split, where every split is all of its files) scores the training set.
void warn_if_eval_is_training_data(const TrainConfig& c) {
  std::set<std::string> train;
  try {
    for (const auto& f : corpus_files(c.data, c.split)) train.insert(fs::weakly_canonical(f).string());
    for (const auto& f : corpus_files(c.eval_data, c.eval_split))
      if (train.count(fs::weakly_canonical(f).string())) {
        spdlog::warn("--eval-data {} (split {}) reads the same files as --data {} (split {}), e.g. {}: the eval loss "
                     "is on training data. Hold out a file, or name the files by split (train/valid/test)",
                     c.eval_data, c.eval_split, c.data, c.split, f);
        return;
      }
  } catch (const std::exception&) {
    // A path that does not resolve is reported by its stream, with its context.
  }
}

int64_t steps_per_epoch(StreamConfig s, std::shared_ptr<const Tokenizer> tok, int grad_accum) {
  s.loop = false;
  s.shuffle = false;
  s.rank = 0;
  s.world = 1;
  s.batch_size = s.batch_size;
  Stream st(s, std::move(tok));
  int64_t batches = 0;
  while (st.next().B > 0) ++batches;
  return std::max<int64_t>(1, batches / grad_accum);
}

// What the run will hold on each rank, settled before anything is loaded: the
// activation plan for the budget (--memory-budget, else on the GPU its free
// memory), the estimate under that plan, and on the GPU the check that it fits
// the free memory. A run that cannot fit ends here, in a second, saying what
// to change, not in an out-of-memory error after minutes of loading.
struct RunMemory {
  MemoryPlan estimate;
  nlohmann::json plan;  // run.json's activation_plan; null without a budget
};

RunMemory plan_run_memory(const TrainConfig& cfg, Device device, const ModelConfig& mc, ModelOptions& mo) {
  const bool gpu = device == Device::CUDA;
  const CudaMemoryInfo info = gpu ? cuda_memory_info() : CudaMemoryInfo{};
  std::optional<MemoryBudget> budget;
  if (cfg.memory_budget > 0) budget = MemoryBudget::flag(cfg.memory_budget);
  else if (gpu) budget = MemoryBudget::free_memory(double(info.free));
  RunMemory r;
  if (!budget) r.estimate = estimate_train_memory(mc, mo, cfg.batch_size, cfg.seq_len);  // the CPU without a budget
  else {
    const ActivationChoice c = plan_activations(mc, mo, cfg.batch_size, cfg.seq_len, *budget);
    if (!c.fits) {
      const std::string advice = memory_advice(mc, c.options, cfg.batch_size, cfg.seq_len, cfg.grad_accum, *budget);
      if (cfg.memory_check) throw Error(cfg.model + ": " + advice);
      spdlog::warn("--no-memory-check: starting anyway, recomputing every layer: {}", advice);
    }
    mo = c.options;
    r.estimate = c.memory;
    spdlog::info("activation plan: {}; estimated peak {}; budget: {}", c.describe(mc.n_layer),
                 c.memory.describe(), budget->what);
    r.plan = {{"memory_budget_gib", gib(budget->bytes)},
              {"estimate_gib", gib(c.memory.total())},
              {"layers", mc.n_layer},
              {"recompute_layers", c.options.recomputed_layers(mc.n_layer)},
              {"pointwise_layers", c.options.grad_checkpoint ? 0 : c.options.pointwise_layers}};
  }
  if (mo.offload_checkpoints) {
    const int parked = mo.recomputed_layers(mc.n_layer);
    if (!gpu)
      spdlog::warn("--offload-checkpoints is for the GPU; on the CPU it changes nothing");
    else if (parked == 0)
      spdlog::info("--offload-checkpoints: no layer is recomputed (the activation plan keeps them all), so none is parked");
    else
      spdlog::info("offloaded checkpoints: {} layer inputs parked in {:.2f} GiB of pinned host memory", parked,
                   gib(double(parked) * cfg.batch_size * cfg.seq_len * mc.d_model * 2));
  }
  if (!gpu) return r;
  spdlog::info("GPU memory estimate: {} per rank; {:.1f} of {:.1f} GiB free", r.estimate.describe(),
               gib(double(info.free)), gib(double(info.total)));
  // Planned for the free memory, the plan's own fit check was this one; only a --memory-budget
  // (which may be more than the GPU has free) still has to be checked against the free memory.
  if (!cfg.memory_check || cfg.memory_budget <= 0) return r;
  const std::string advice = memory_advice(mc, mo, cfg.batch_size, cfg.seq_len, cfg.grad_accum,
                                           MemoryBudget::free_memory(double(info.free)));
  if (advice.empty()) return r;
  // Planned for a --memory-budget past what the GPU has free: the budget is the first thing to lower.
  throw Error(cfg.model + ": " + advice +
              " A --memory-budget within the free memory (or 0, the default) recomputes what it must to fit.");
}

}  // namespace

int run_training(const TrainConfig& cfg) {
  const auto t_begin = Clock::now();  // setup_s in run.json: what the anchors' setup times measure too
  validate(cfg);
  // The eval data is first read by an evaluation, maybe after the whole run: find its files now.
  if (!cfg.eval_data.empty()) {
    try {
      corpus_files(cfg.eval_data, cfg.eval_split);
    } catch (const Error& e) {
      throw Error("--eval-data " + cfg.eval_data + " (--eval-split " + cfg.eval_split + "): " + e.what());
    }
  }
  ScheduleKind sched_kind = parse_schedule(cfg.schedule);
  const Device device = resolve_device(cfg.device);
  set_attention_impl(parse_attention_impl(cfg.attention, "--attention"));
  auto comm = make_communicator(device, cfg.comm_timeout);
  const bool rank0 = comm->rank() == 0;
  if (!rank0) spdlog::set_level(spdlog::level::err);
  bind_rank(*comm, device, cfg.bind);  // logs what it did
  try {
    StopSignals signals(comm->world());
    std::unique_ptr<OutputLock> out_lock;
    if (rank0) {
      out_lock = std::make_unique<OutputLock>(cfg.out);
      check_output_dir(cfg.out, !cfg.resume.empty(), cfg.overwrite);
    }
    spdlog::info("device {}{} | {} rank(s) over {}", device_name(device),
                 device == Device::CUDA ? " (" + cuda_device_name() + ")" : "", comm->world(), comm->name());
    ModelSpec ms;
    ms.model = cfg.model;
    ms.tokenizer = cfg.tokenizer;
    ms.device = device;
    ms.method = cfg.method;
    ms.lora = {cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.rslora,
               parse_lora_patterns(cfg.lora_rank_pattern, cfg.lora_alpha_pattern), cfg.blora_lambda,
               cfg.qablora_tile[0], cfg.qablora_tile[1]};
    ms.adapter_type = cfg.dora ? "dora" : cfg.adapter_type;
    if (!cfg.ia3_feedforward.empty()) ms.ia3_feedforward = cfg.ia3_feedforward;
    ms.int8_threshold = cfg.int8_threshold;
    ms.bitnet_warmup = cfg.bitnet_warmup;
    ms.bitnet_subln = cfg.bitnet_subln;
    ms.loftq_iters = cfg.loftq_iters;
    ms.hqq_bits = cfg.hqq_bits;
    ms.lowra_bits = cfg.lowra_bits;
    ms.targets = cfg.target;
    ms.seed = cfg.seed;
    ms.grad_checkpoint = cfg.grad_checkpoint;
    ms.offload_checkpoints = cfg.offload_checkpoints;
    RunMemory memory;
    ms.before_build = [&](const ModelConfig& mc, ModelOptions& mo) { memory = plan_run_memory(cfg, device, mc, mo); };
    BuiltModel built = build_model(ms);
    const double build_s = seconds_since(t_begin);
    const LoadedModel& lm = built.loaded;
    auto tok = built.tokenizer;
    Model* model = built.model.get();
    const bool trains_base = model->method().trains_base;
    check_seq_len(cfg, lm.config.max_pos, cfg.model);
    spdlog::info("model {} ({} layers, d {}, vocab {}) | method {} | {} | built in {:.1f} s", cfg.model,
                 lm.config.n_layer, lm.config.d_model, lm.config.vocab_size,
                 cfg.method + (model->adapter_type() ? " + " + model->adapter_type()->name : std::string()),
                 describe_params(*model), build_s);
    if (!trains_base) {
      std::string missing, kinds;
      const auto unmatched = model->unmatched_targets();
      for (auto& t : unmatched) missing += (missing.empty() ? "'" : ", '") + t + "'";
      for (auto& k : model->linear_kinds()) kinds += (kinds.empty() ? "" : ", ") + k;
      if (!missing.empty())
        throw Error("--target " + missing + (unmatched.size() > 1 ? " match" : " matches") + " no module of " + cfg.model + " (its Linear modules: " + kinds +
                    "; a target is a module name or its dotted suffix, or all-linear)");
    }
    if (model->trainable_params() == 0) throw Error("--target matched no module of this model: nothing to train");

    StreamConfig sc = make_stream_config(stream_spec(cfg, cfg.data, cfg.split, true), built, *comm);
    if (rank0 && !cfg.eval_data.empty()) warn_if_eval_is_training_data(cfg);
    int64_t total = cfg.steps;
    if (total == 0) {
      spdlog::info("counting one epoch of {} to size the schedule...", cfg.data);
      StreamConfig global = sc;
      global.batch_size = cfg.batch_size * comm->world();
      total = std::max<int64_t>(1, int64_t(std::ceil(cfg.epochs * double(steps_per_epoch(global, tok, cfg.grad_accum)))));
      if (cfg.warmup >= total)
        throw Error("--warmup " + std::to_string(cfg.warmup) + " must be below the " + std::to_string(total) +
                    " steps of --epochs " + std::to_string(cfg.epochs) + ": the learning rate would never reach --lr");
    }
    if (cfg.method == "bitnet" && cfg.bitnet_warmup >= total && rank0)
      spdlog::warn("--bitnet-warmup {} is not below --steps {}: the run ends with the ternary weights blended in "
                   "part-way (lambda {:.2f}), but eval, export and generate use model/ fully ternary (lambda 1). "
                   "A warmup of at most half the steps gives a model trained as it is used",
                   cfg.bitnet_warmup, total, double(total - 1) / double(cfg.bitnet_warmup));
    Stream stream(sc, tok);
    AdamW opt(model->params(), {0.9f, 0.999f, 1e-8f, float(cfg.weight_decay)});
    LrSchedule sched(sched_kind, cfg.lr, cfg.warmup, total);
    GradReducer reducer(*comm, model->params(), size_t(cfg.bucket_mb * 1024 * 1024));
    model->on_layer_grads_ready = [&](int layer) { reducer.layer_done(layer); };

    int64_t step = 0;
    const std::string ckpt_dir = (fs::path(cfg.out) / "checkpoint").string();
    if (!cfg.resume.empty()) {
      const std::string dir = resume_checkpoint_dir(cfg.resume);
      if (dir.empty()) throw Error(cfg.resume + ": no complete checkpoint found (looked for checkpoint/ inside it)");
      CheckpointState st = load_checkpoint(dir);
      restore_params(model->params(), st.params, dir);
      opt.load_state(model->params(), st.optimizer, st.optimizer_steps, dir);
      stream.restore(st.data_position);
      model->set_rng_counter(st.rng.value("model_counter", uint64_t(0)));
      step = st.step;
      if (step > total)
        throw Error((cfg.steps > 0 ? std::string("--steps ") : "--epochs " + fmt::format("{:g}", cfg.epochs) + " = ") +
                    std::to_string(total) + " ends before step " + std::to_string(step) + ", where " + dir +
                    " stands: nothing to train. Give --steps above " + std::to_string(step));
      spdlog::info("resumed from {} at step {}", dir, step);
    }
    // A full fine-tune's GPU products read BF16 copies of the weights that AdamW writes with each
    // update, instead of rounding every F32 master at every use. Made here, after every write of
    // the values (load, resume) and before step 1.
    if (model->method().uses_compute_copy()) model->params().enable_compute_copy();
    std::unique_ptr<MetricsWriter> metrics;
    if (rank0 && cfg.resume.empty() && cfg.overwrite) remove_earlier_results(cfg.out);  // only now: inputs passed
    if (rank0) metrics = std::make_unique<MetricsWriter>(cfg.out, cfg.resume.empty() ? -1 : step);
    if (rank0) {
      // What was trained, for reports beside metrics.jsonl: parameter counts as peft prints them.
      nlohmann::json run = {{"model", cfg.model},
                            {"method", cfg.method},
                            {"trainable_params", model->trainable_params()},
                            {"total_params", model->total_params()},
                            {"device", device == Device::CUDA ? cuda_device_name() : std::string("cpu")},
                            {"world_size", comm->world()},
                            {"activation_plan", memory.plan},
                            // Seconds from the start to the model built, and to the first step (data and
                            // optimizer set up too): the time to compare with another tool's load time.
                            {"build_s", build_s},
                            {"setup_s", seconds_since(t_begin)},
                            {"config", to_json(cfg)}};
      std::ofstream(fs::path(cfg.out) / "run.json") << run.dump(1) << "\n";
    }

    auto save = [&](bool final_save) {
      if (rank0) {
        CheckpointState st;
        st.step = step;
        st.optimizer_steps = opt.steps();
        st.rng = {{"model_counter", model->rng_counter()}};
        st.data_position = stream.state();
        st.config = checkpoint_config(cfg);
        st.params = param_tensors(model->params());
        st.optimizer = opt.state_tensors(model->params());
        save_checkpoint(ckpt_dir, st, cfg.keep_checkpoints);
        // The final outputs are swapped in whole, as checkpoints are: a full
        // disk leaves the previous ones (or none), never a truncated file.
        if (final_save) {
          if (trains_base) {
            write_dir_atomically((fs::path(cfg.out) / "model").string(), [&](const std::string& dir) {
              save_safetensors((fs::path(dir) / "model.safetensors").string(), model->hf_state_dict(false),
                               {{"format", "pt"}});
              copy_model_files(cfg.model, model->config(), dir, true);
            });
          } else {
            write_dir_atomically((fs::path(cfg.out) / "adapter").string(),
                                 [&](const std::string& dir) { save_peft_adapter(dir, *model, cfg.model); });
          }
        }
      }
      comm->barrier();
    };

    std::unique_ptr<Stream> eval_stream;
    // False when a stop signal (on any rank) cut the evaluation short: nothing is recorded.
    auto run_eval = [&] {
      if (cfg.eval_data.empty()) return true;
      StreamConfig ec = make_stream_config(stream_spec(cfg, cfg.eval_data, cfg.eval_split, false), built, *comm);
      Stream es(ec, tok);
      // Said first: an evaluation prints nothing until its result (the final one, after "done",
      // is minutes of the whole split on a CPU).
      spdlog::info("eval step {}: {} of {} (split {}) ...", step,
                   cfg.eval_batches > 0 ? std::to_string(cfg.eval_batches) + " batches" : std::string("every batch"),
                   cfg.eval_data, cfg.eval_split);
      EvalResult r = evaluate(*model, es, *comm, false, cfg.eval_batches, [] { return StopSignals::requested() != 0; });
      if (r.stopped) return false;
      spdlog::info("eval step {}: loss {:.4f} ppl {:.3f} ({} tokens)", step, r.loss, r.ppl, r.tokens);
      if (metrics) {
        StepMetrics m;
        m.step = step;
        m.loss = r.loss;
        m.extra = {{"eval_loss", r.loss}, {"eval_ppl", r.ppl}, {"eval_tokens", r.tokens}, {"kind", "eval"}};
        metrics->write(m);
      }
      return true;
    };

    Progress progress(total, cfg.log_every, Progress::stderr_is_terminal() && rank0);
    const auto t_start = Clock::now();
    double tokens_seen = 0, exposed_before = 0, wait_before = 0;
    // Model FLOPs per token for MFU: forward 2N, input gradients 2N, weight
    // gradients 2N only when the base trains; plus causal attention
    // (QK^T and PV, forward and backward: 6 * L * T * d, halved for causality).
    const double n_params = double(model->total_params());
    const double flops_per_token = (trains_base ? 6.0 : 4.0) * n_params +
                                   6.0 * lm.config.n_layer * double(cfg.seq_len) * lm.config.n_head * lm.config.head_dim;
    const double peak_flops = device == Device::CUDA ? peak_bf16_flops(cuda_device_name()) : 0.0;
    spdlog::info("training {} steps: {} rank(s) x batch {} x accum {} x seq {} | lr {} {} warmup {}", total - step,
                 comm->world(), cfg.batch_size, cfg.grad_accum, cfg.seq_len, cfg.lr, cfg.schedule, cfg.warmup);
    const int64_t profile_from = step + 2;  // skip allocator growth and gemm autotuning
    bool profiling = false;
    TrainingHealth health({cfg.on_nonfinite == "stop", cfg.max_nonfinite_skips, cfg.collapse_steps,
                           lm.config.vocab_size});
    const std::set<int64_t> poisoned_steps = nonfinite_test_steps();
    // Ends the run early with a checkpoint of the last finished step.
    auto stop_with_checkpoint = [&](const std::string& why) {
      progress.finish();
      save(false);
      spdlog::info("{} at step {} of {}; checkpoint in {}. Continue with: qtrain train --resume {}", why, step, total,
                   ckpt_dir, cfg.out);
      comm->barrier();  // no rank exits (and has mpirun end the job) before rank 0 has said so
    };
    bool first_step_logged = false;
    while (step < total) {
      if (cfg.profile_kernels && rank0 && device == Device::CUDA && step == profile_from) {
        cuda_sync();
        if (std::string why = kernel_profile_start(); !why.empty())
          spdlog::warn("--profile-kernels: {}", why);
        else
          profiling = true;
      }
      const auto t0 = Clock::now();
      std::vector<Batch> micro;
      double counts[2] = {0, 0};  // predicted tokens, loss sum
      for (int k = 0; k < cfg.grad_accum; ++k) {
        micro.push_back(stream.next());
        counts[0] += double(micro.back().n_targets());
      }
      // The global token count comes first, so every rank scales its loss
      // gradient by 1/global: the summed gradients are then exactly the
      // gradient of the global mean loss, however unevenly tokens fall.
      comm->allreduce_sum(counts, 1);
      const double global_tokens = counts[0];
      model->params().zero_grads();
      model->set_step(step);  // BitNet's quantization warmup
      double loss_sum = 0;
      try {
        for (int k = 0; k < cfg.grad_accum; ++k) {
          const Batch& b = micro[size_t(k)];
          reducer.set_enabled(k == cfg.grad_accum - 1);
          TokenBatch tb{b.B, b.T, b.inputs.data(), b.targets.data()};
          float scale = global_tokens > 0 ? float(1.0 / global_tokens) : 0.f;
          LossSum s = model->forward(tb, std::max(scale, 1e-30f));
          model->backward();
          loss_sum += s.sum;
          tokens_seen += double(b.B) * b.T * comm->world();
        }
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::OutOfMemory) throw;
        throw Error("out of GPU memory in step " + std::to_string(step + 1) + " (micro-batch " +
                        std::to_string(cfg.batch_size) + " x " + std::to_string(cfg.seq_len) + " tokens; estimated " +
                        memory.estimate.describe() + "). Lower --batch-size (raising --grad-accum keeps the tokens " +
                        "per step), add --grad-checkpoint or a lower --memory-budget, or shorten --seq-len. " +
                        (find_checkpoint(ckpt_dir).empty() ? std::string("No checkpoint was written.")
                                                           : "The last checkpoint is kept; --resume " + cfg.out +
                                                                 " continues from it.") +
                        " (" + e.what() + ")",
                    ErrorKind::OutOfMemory);
      }
      reducer.finish();
      // A stop signal on any rank rides on this step's loss reduction, so
      // every rank stops after the same step.
      double sums[2] = {loss_sum, StopSignals::requested() ? 1.0 : 0.0};
      comm->allreduce_sum(sums, 2);
      loss_sum = sums[0];
      bool stop_requested = sums[1] > 0;
      if (poisoned_steps.count(step + 1)) scale_inplace(model->params().grads(), std::nanf(""));
      GradClip clip = clip_grad_norm(model->params().grads(), 1.f, float(cfg.clip));
      const double lr = sched.lr(step);
      const double loss = global_tokens > 0 ? loss_sum / global_tokens : 0.0;
      const auto verdict = health.observe(step + 1, loss, clip.norm, global_tokens);
      if (verdict == TrainingHealth::Verdict::Ok)
        opt.step(model->params(), float(lr), clip.grad_scale);
      else if (verdict == TrainingHealth::Verdict::Skip)
        spdlog::warn("{}", health.reason());
      ++step;
      const double dt = seconds_since(t0), elapsed = seconds_since(t_start);
      const double tps = double(cfg.batch_size) * cfg.seq_len * cfg.grad_accum * comm->world() / dt;
      const double mfu = peak_flops > 0 ? tps * flops_per_token / (peak_flops * comm->world()) : 0.0;
      const double exposed = reducer.exposed_seconds() - exposed_before;
      exposed_before = reducer.exposed_seconds();
      const double host_wait = reducer.wait_seconds() - wait_before;
      wait_before = reducer.wait_seconds();
      if (metrics) {
        StepMetrics m;
        m.step = step;
        m.loss = loss;
        m.lr = lr;
        m.grad_norm = clip.norm;
        m.tokens_per_s = tps;
        m.elapsed_s = elapsed;
        m.extra = {{"step_s", dt}, {"tokens", global_tokens}, {"comm_exposed_s", exposed},
                   {"nonfinite_skipped", health.skipped_total()}};
        if (comm->world() > 1) m.extra["comm_host_wait_s"] = host_wait;
        if (mfu > 0) m.extra["mfu"] = mfu;
        if (device == Device::CUDA) m.extra["attention"] = last_attention_impl();
        if (device == Device::CUDA) {
          CudaMemoryStats ms = cuda_memory_stats();
          m.extra["gpu_peak_gib"] = gib(double(ms.peak));
          m.extra["gpu_reserved_gib"] = gib(double(ms.reserved));
          m.extra["gpu_estimate_gib"] = gib(memory.estimate.allocator());  // beside gpu_peak_gib, the same scope
          // The whole device as the driver counts it (nvidia-smi's figure on a GPU of our own): the
          // allocator's reserve plus the CUDA context, library handles and workspaces outside it.
          m.extra["gpu_device_used_gib"] = gib(double(cuda_memory_info().device_used));
        }
        if (!memory.plan.is_null())
          for (const char* k : {"memory_budget_gib", "recompute_layers", "pointwise_layers"})
            m.extra[k] = memory.plan[k];
        metrics->write(m);
      }
      progress.update({step, total, loss, tokens_seen / std::max(elapsed, 1e-9), dt, mfu});
      if (device == Device::CUDA && !first_step_logged) {
        first_step_logged = true;
        spdlog::info("GPU memory after the first step: peak {:.2f} GiB (estimated {:.2f}) in qtrain's allocator; "
                     "estimated {:.2f} GiB with the library buffers outside it; the device holds {:.2f} GiB now "
                     "(CUDA context and cached blocks included, as nvidia-smi counts)",
                     gib(double(cuda_memory_stats().peak)), gib(memory.estimate.allocator()),
                     gib(memory.estimate.total()), gib(double(cuda_memory_info().device_used)));
      }
      if (verdict == TrainingHealth::Verdict::Stop) {
        // Every rank reaches the same verdict (it reads reduced values). The
        // checkpoint on disk is the last good state: keep it, write nothing.
        progress.finish();
        const std::string kept = find_checkpoint(ckpt_dir);
        if (rank0)
          std::fprintf(stderr, "qtrain: error: %s. %s\n", health.reason().c_str(),
                       kept.empty() ? "No checkpoint was written (see --save-every)."
                                    : ("The last checkpoint, " + kept + ", is kept; --resume " + cfg.out +
                                       " continues from it (with a lower --lr).").c_str());
        comm->barrier();
        return 1;
      }
      if (cfg.save_every > 0 && step % cfg.save_every == 0 && step < total && !stop_requested) save(false);
      if (cfg.eval_every > 0 && step % cfg.eval_every == 0 && step < total && !stop_requested)
        stop_requested = !run_eval();
      if (stop_requested && step < total) {
        const int sig = StopSignals::requested();
        stop_with_checkpoint(std::string("stopped by ") + (sig ? StopSignals::name(sig) : "a signal to another rank"));
        return 128 + (sig ? sig : SIGTERM);
      }
      if (cfg.stop_at > 0 && step >= cfg.stop_at && step < total) {
        stop_with_checkpoint("stopped (--stop-at)");
        return 0;
      }
    }
    progress.finish();
    if (profiling) {
      cuda_sync();
      write_kernel_profile(kernel_profile_stop(), step - profile_from, cfg.out + "/kernel_profile.json");
    }
    // Save before the final evaluation: a whole split can take longer than the
    // training, and a bad eval record or a kill during it must not lose the run.
    const auto t_save = Clock::now();
    save(true);
    if (rank0)
      spdlog::info("done: {} steps in {:.1f}s; wrote {}/{}, {}/metrics.jsonl, {} (in {:.1f} s)", step,
                   seconds_since(t_start), cfg.out, trains_base ? "model" : "adapter", cfg.out, ckpt_dir,
                   seconds_since(t_save));
    if (!run_eval()) {
      const int sig = StopSignals::requested();
      if (rank0)
        spdlog::info("final evaluation cut short by {}; the adapter and checkpoint of step {} are written",
                     sig ? StopSignals::name(sig) : "a signal to another rank", step);
      return 128 + (sig ? sig : SIGTERM);
    }
    return 0;
  } catch (const std::exception& e) {
    // Take the other ranks down with us instead of leaving them in a collective.
    // Bad input ends the job with 2, as it ends a single process (launch/main.cpp).
    const auto* qe = dynamic_cast<const Error*>(&e);
    if (comm->world() > 1) comm->abort(e.what(), qe && qe->kind() == ErrorKind::BadInput ? 2 : 1);
    throw;
  }
}

}  // namespace qtrain
