#include "trainer/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/device.h"
#include "kernels/loss.h"
#include "models/method.h"

namespace qtrain {

namespace {

// cuBLASLt and cuDNN workspaces, NCCL buffers: allocated outside qtrain's
// allocator, so not in its measured peak.
constexpr double kLibraryBytes = 512.0 * (1 << 20);

// The loss's F32 logits scratch, one chunk of rows, its gradient written in
// place: on the GPU sized to the batch (kernels/loss.h, outside the allocator), 64 MB on the CPU.
double logits_chunk_bytes(double N, int vocab, Device dev) {
  return dev == Device::CUDA ? double(loss_chunk_bytes(int64_t(N), vocab)) : std::min(64e6, N * vocab * 4.0);
}

// One decimal, but two significant digits below 0.1 GiB (a test model's whole run).
std::string fmt_gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, gib(bytes) < 0.1 && bytes > 0 ? "%.2g" : "%.1f", gib(bytes));
  return b;
}

bool fits(const MemoryPlan& p, const MemoryBudget& budget) { return p.total() <= budget.bytes; }

double act_bytes(const ModelOptions& opt) { return opt.device == Device::CUDA ? 2 : 4; }  // BF16 on the GPU, F32 on the CPU

// A frozen base weight's bits: the method's own, else dense in the activation dtype.
double base_bits(const Method& m, const ModelOptions& opt) { return m.base_bits ? m.base_bits(opt) : 8 * act_bytes(opt); }

// Tensors of N rows of these columns, `elt` bytes each, as the allocator hands them out.
double tensor_bytes(const std::vector<int64_t>& cols, double N, double elt, Device dev) {
  double sum = 0;
  for (int64_t c : cols) {
    const double b = N * double(c) * elt;
    sum += dev == Device::CUDA ? double(cuda_block_bytes(size_t(b))) : b;
  }
  return sum;
}

// The plan for a footprint already read (memory_advice tries many batch shapes of one model).
MemoryPlan estimate(const ModelFootprint& f, const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq) {
  const Method& method = find_method(opt.method);
  const double act = act_bytes(opt);
  const double N = double(batch) * seq, L = cfg.n_layer;
  const Device dev = opt.device;
  MemoryPlan p;
  p.weights = double(f.frozen_linear) * base_bits(method, opt) / 8 + double(f.frozen_slots) * act +
              double(f.trained_linear) * act;
  p.optimizer = double(f.trainable) * 4 * 4;  // value, gradient, AdamW m and v, all F32
  // The BF16 copies of a full fine-tune's values that the GPU's products read (the Linears' are
  // counted as trained_linear above).
  if (dev == Device::CUDA && method.uses_compute_copy()) p.optimizer += double(f.trainable - f.trained_linear) * 2;
  const double residual = tensor_bytes({cfg.d_model}, N, act, dev);  // each layer's input (Model::xs_)
  // What the adapters save (LoRA's x A^T, a dropped input and its mask, DoRA's unscaled output, ...).
  const double adapter_kept = tensor_bytes(f.adapter_cols, N, act, dev) + N * double(f.adapter_bytes);
  const double per_layer_adapter = adapter_kept / std::max(1.0, L);
  const double layer_all =
      tensor_bytes(f.kept_cols, N, act, dev) + tensor_bytes(f.kept_f32_cols, N, 4, dev) + per_layer_adapter;
  const double pointwise = tensor_bytes(f.pointwise_cols, N, act, dev), layer_gemm = layer_all - pointwise;
  double kept = 0, gemm_kept = 0, parked = 0;
  bool recomputes = false;
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerKeep k = opt.layer_keep(l);
    kept += k == LayerKeep::All ? layer_all : k == LayerKeep::GemmOutputs ? layer_gemm : 0.0;
    gemm_kept += k == LayerKeep::GemmOutputs ? layer_gemm : 0.0;
    recomputes |= k == LayerKeep::None;
    parked += opt.parks(l);
  }
  // Parked layer inputs (offloaded checkpoints, Model::forward) live in host memory; at most two
  // are on the GPU beside the others at once (one being copied out or fetched ahead, one in use).
  p.activations = (L + 1 - parked) * residual + kept;
  p.transient += std::min(parked, 2.0) * residual;
  // Backward frees each layer as it passes it, top down: first the layers that
  // keep everything, then those that keep GEMM outputs (each gets its
  // pointwise tensors back for its backward), then the recomputed ones (each
  // holds everything again). The peak is the largest of the three, not their sum.
  double peak = kept;
  if (gemm_kept > 0) peak = std::max(peak, gemm_kept + pointwise);
  if (recomputes) peak = std::max(peak, layer_all);
  p.transient += peak - kept;
  p.transient += tensor_bytes(f.backward_cols, N, act, dev);
  p.transient += tensor_bytes({cfg.d_model, cfg.d_model, cfg.d_model}, N, act, dev);  // final norm, its gradient, dx
  if (method.quantizes_base()) p.transient += double(f.largest_linear) * act;  // a dequantized weight
  (dev == Device::CUDA ? p.library : p.transient) += logits_chunk_bytes(N, cfg.vocab_size, dev);
  if (dev == Device::CUDA) p.library += kLibraryBytes;
  return p;
}

}  // namespace

double gib(double bytes) { return bytes / double(1 << 30); }

std::string MemoryPlan::describe() const {
  return fmt_gib(total()) + " GiB (weights " + fmt_gib(weights) + ", optimizer " + fmt_gib(optimizer) +
         ", activations " + fmt_gib(activations) + ", transient " + fmt_gib(transient) +
         (library > 0 ? ", library " + fmt_gib(library) : std::string()) + ")";
}

MemoryPlan estimate_train_memory(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq) {
  return estimate(Model::footprint(cfg, opt), cfg, opt, batch, seq);
}

MemoryBudget MemoryBudget::free_memory(double free_bytes) {
  return {0.97 * free_bytes, fmt_gib(free_bytes) + " GiB are free"};
}

MemoryBudget MemoryBudget::flag(double gib_value) {
  MemoryBudget b{gib_value * double(1 << 30), ""};
  b.what = "--memory-budget is " + fmt_gib(b.bytes) + " GiB";
  return b;
}

std::string memory_advice(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq, int grad_accum,
                          const MemoryBudget& budget) {
  // The activation plan changes no declaration: one footprint serves every shape tried below.
  const ModelFootprint f = Model::footprint(cfg, opt);
  const MemoryPlan plan = estimate(f, cfg, opt, batch, seq);
  if (fits(plan, budget)) return "";
  std::string msg = "this run needs about " + plan.describe() + (opt.device == Device::CUDA ? " of GPU" : " of") +
                    " memory per rank, and " + budget.what + ". ";
  const Method& method = find_method(opt.method);
  const MemoryPlan one = estimate(f, cfg, opt, 1, std::min(seq, 64));
  if (!fits(one, budget)) {
    msg += "The model alone does not fit (" + fmt_gib(plan.weights + plan.optimizer) + " GiB of weights and optimizer state)";
    if (method.trains_base || base_bits(method, opt) > 5)
      msg += ": train adapters on a 4-bit base (--method qlora holds about 4.1 bits per weight)";
    return msg + "; more ranks do not help, each holds the whole model.";
  }
  std::vector<std::string> ways;
  int b = batch - 1;
  while (b >= 1 && !fits(estimate(f, cfg, opt, b, seq), budget)) b = b > 8 ? b * 3 / 4 : b - 1;
  if (b >= 1) {
    const int accum = (batch * grad_accum + b - 1) / b;
    ways.push_back("--batch-size " + std::to_string(b) + " --grad-accum " + std::to_string(accum) +
                   " (about the same tokens per step)");
  }
  if (!opt.grad_checkpoint) {
    ModelOptions ck = opt;
    ck.grad_checkpoint = true;
    if (fits(estimate(f, cfg, ck, batch, seq), budget))
      ways.push_back("--grad-checkpoint (recomputes activations: about a third more compute)");
  }
  if (!opt.offload_checkpoints && opt.device == Device::CUDA) {
    ModelOptions ck = opt;
    ck.grad_checkpoint = ck.offload_checkpoints = true;
    if (fits(estimate(f, cfg, ck, batch, seq), budget))
      ways.push_back(std::string(opt.recomputed_layers(cfg.n_layer) == cfg.n_layer ? "" : "--grad-checkpoint ") +
                     "--offload-checkpoints (the recomputed layers' inputs wait in host memory)");
  }
  if (b < 1) {
    int s = seq / 2;
    while (s >= 64 && !fits(estimate(f, cfg, opt, 1, s), budget)) s /= 2;
    if (s >= 64) ways.push_back("--batch-size 1 --seq-len " + std::to_string(s));
  }
  if (ways.empty()) return msg + "Use a smaller --seq-len or --batch-size.";
  msg += "Try ";
  for (size_t i = 0; i < ways.size(); ++i) msg += (i ? ", or " : "") + ways[i];
  return msg + " (or --no-memory-check if you know better).";
}

ActivationChoice plan_activations(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq,
                                  const MemoryBudget& budget) {
  const ModelFootprint f = Model::footprint(cfg, opt);
  const int L = cfg.n_layer;
  ActivationChoice c{opt, {}, false};
  auto tryit = [&](int recompute, int pointwise) {
    c.options.recompute_layers = recompute;
    c.options.pointwise_layers = pointwise;
    c.memory = estimate(f, cfg, c.options, batch, seq);
    return c.fits = fits(c.memory, budget);
  };
  // The estimate shrinks as either count grows, so the first that fits is the
  // fewest: layers recomputed whole (the others keeping GEMM outputs only),
  // then layers keeping GEMM outputs only.
  int k = opt.grad_checkpoint ? L : 0, j = 0;
  while (k < L && !tryit(k, L - k)) ++k;
  while (j < L - k && !tryit(k, j)) ++j;
  tryit(k, j);  // when nothing fits: every layer recomputed, fits false
  return c;
}

std::string ActivationChoice::describe(int n_layer) const {
  int counts[3] = {0, 0, 0};
  for (int l = 0; l < n_layer; ++l) ++counts[int(options.layer_keep(l))];
  return std::to_string(n_layer) + " layers: " + std::to_string(counts[int(LayerKeep::All)]) + " keep everything, " +
         std::to_string(counts[int(LayerKeep::GemmOutputs)]) + " keep GEMM outputs (norms and SwiGLU/GELU redone), " +
         std::to_string(counts[int(LayerKeep::None)]) + " recomputed";
}

}  // namespace qtrain
