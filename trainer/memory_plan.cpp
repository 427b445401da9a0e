#include "trainer/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "models/method.h"

namespace qtrain {

namespace {

// cuBLASLt and cuDNN workspaces, NCCL buffers, allocator rounding: measured
// on an H200 as the gap between the allocator's peak and the tensors it holds.
constexpr double kLibraryBytes = 512.0 * (1 << 20);
// The loss's F32 logits chunk (kernels/cuda/loss.cu's budget) and its gradient.
constexpr double kLogitsChunkBytes = 2 * 256.0 * (1 << 20);

std::string fmt_gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", gib(bytes));
  return b;
}

bool fits(const MemoryPlan& p, double free_bytes) { return p.total() <= 0.97 * free_bytes; }

double act_bytes(const ModelOptions& opt) { return opt.device == Device::CUDA ? 2 : 4; }  // BF16 on the GPU, F32 on the CPU

// A frozen base weight's bits: the method's own, else dense in the activation dtype.
double base_bits(const Method& m, const ModelOptions& opt) { return m.base_bits ? m.base_bits(opt) : 8 * act_bytes(opt); }

// The plan for a footprint already read (memory_advice tries many batch shapes of one model).
MemoryPlan estimate(const ModelFootprint& f, const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq) {
  const Method& method = find_method(opt.method);
  const double act = act_bytes(opt);
  const double N = double(batch) * seq, L = cfg.n_layer;
  MemoryPlan p;
  p.weights = double(f.frozen_linear) * base_bits(method, opt) / 8 + double(f.frozen_slots) * act +
              double(f.trained_linear) * act;
  p.optimizer = double(f.trainable) * 4 * 4;  // value, gradient, AdamW m and v, all F32
  const double layer_kept = N * (double(f.kept_cols) * act + double(f.kept_f32_cols) * 4);
  const double residual = N * cfg.d_model * act;  // each layer's input (Model::xs_)
  // An adapter keeps [N, r] per Linear (LoRA's x A^T, F32 bound), and with
  // dropout its dropped input and the mask.
  const double adapter_kept = N * (double(f.adapted) * opt.lora.r * 4 +
                                   (opt.lora.dropout > 0 ? double(f.adapted_inputs) * (act + 1) : 0.0));
  const double per_layer_adapter = adapter_kept / std::max(1.0, L);
  if (opt.grad_checkpoint) {
    p.activations = (L + 1) * residual;
    p.transient += layer_kept + per_layer_adapter;  // the one layer being recomputed
  } else {
    p.activations = L * (layer_kept + residual) + residual + adapter_kept;
  }
  p.transient += N * double(f.backward_cols) * act;
  p.transient += std::min(kLogitsChunkBytes, N * cfg.vocab_size * 4.0 * 2) + 3 * N * cfg.d_model * act;
  if (method.quantizes_base()) p.transient += double(f.largest_linear) * act;  // a dequantized weight
  p.transient += kLibraryBytes;
  return p;
}

}  // namespace

double gib(double bytes) { return bytes / double(1 << 30); }

std::string MemoryPlan::describe() const {
  return fmt_gib(total()) + " GiB (weights " + fmt_gib(weights) + ", optimizer " + fmt_gib(optimizer) +
         ", activations " + fmt_gib(activations) + ", transient " + fmt_gib(transient) + ")";
}

MemoryPlan estimate_train_memory(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq) {
  return estimate(Model::footprint(cfg, opt), cfg, opt, batch, seq);
}

std::string memory_advice(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq, int grad_accum,
                          double free_bytes) {
  // grad_checkpoint changes no declaration: one footprint serves every shape tried below.
  const ModelFootprint f = Model::footprint(cfg, opt);
  const MemoryPlan plan = estimate(f, cfg, opt, batch, seq);
  if (fits(plan, free_bytes)) return "";
  std::string msg = "this run needs about " + plan.describe() + " of GPU memory per rank, and " +
                    fmt_gib(free_bytes) + " GiB are free. ";
  const Method& method = find_method(opt.method);
  const MemoryPlan one = estimate(f, cfg, opt, 1, std::min(seq, 64));
  if (!fits(one, free_bytes)) {
    msg += "The model alone does not fit (" + fmt_gib(plan.weights + plan.optimizer) + " GiB of weights and optimizer state)";
    if (method.trains_base || base_bits(method, opt) > 5)
      msg += ": train adapters on a 4-bit base (--method qlora holds about 4.1 bits per weight)";
    return msg + "; more ranks do not help, each holds the whole model.";
  }
  std::vector<std::string> ways;
  int b = batch - 1;
  while (b >= 1 && !fits(estimate(f, cfg, opt, b, seq), free_bytes)) b = b > 8 ? b * 3 / 4 : b - 1;
  if (b >= 1) {
    const int accum = (batch * grad_accum + b - 1) / b;
    ways.push_back("--batch-size " + std::to_string(b) + " --grad-accum " + std::to_string(accum) +
                   " (about the same tokens per step)");
  }
  if (!opt.grad_checkpoint) {
    ModelOptions ck = opt;
    ck.grad_checkpoint = true;
    if (fits(estimate(f, cfg, ck, batch, seq), free_bytes))
      ways.push_back("--grad-checkpoint (recomputes activations: about a third more compute)");
  }
  if (b < 1) {
    int s = seq / 2;
    while (s >= 64 && !fits(estimate(f, cfg, opt, 1, s), free_bytes)) s /= 2;
    if (s >= 64) ways.push_back("--batch-size 1 --seq-len " + std::to_string(s));
  }
  if (ways.empty()) return msg + "Use a smaller --seq-len or --batch-size.";
  msg += "Try ";
  for (size_t i = 0; i < ways.size(); ++i) msg += (i ? ", or " : "") + ways[i];
  return msg + " (or --no-memory-check if you know better).";
}

}  // namespace qtrain
