// The GPU memory a training run needs, estimated before anything is loaded:
// from the model's shape (its declaration, Model::footprint), the method's
// bits per base weight and the micro-batch. A run that cannot fit then says
// so in a second, with what to change, instead of failing after minutes of
// loading and quantizing; after the first step the log compares the estimate
// with the measured peak.
#pragma once
#include <string>

#include "models/model.h"

namespace qtrain {

struct MemoryPlan {
  double weights = 0;      // frozen base + embeddings and norms (+ BF16 compute copies of trained weights)
  double optimizer = 0;    // trainable F32 values, gradients and AdamW moments
  double activations = 0;  // kept for backward: each layer's input, and what the activation plan keeps
  double transient = 0;    // one layer's backward (and recompute), the loss's inputs, a dequantized weight
  double library = 0;      // outside qtrain's allocator: cuBLASLt/cuDNN workspaces, the loss's logits chunk
  double total() const { return weights + optimizer + activations + transient + library; }
  // What qtrain's allocator holds at its peak: the figure its measured peak is checked against.
  double allocator() const { return total() - library; }
  std::string describe() const;  // "7.4 GiB (weights 3.9, optimizer 0.6, activations 2.4, transient 0.5, library 0.8)"
};

// One rank's memory for micro-batches of `batch` x `seq` tokens, under the
// options' activation plan (ModelOptions::layer_keep).
MemoryPlan estimate_train_memory(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq);

// The memory a run may use per rank, and how the advice names it.
struct MemoryBudget {
  double bytes = 0;  // what the estimate must stay within
  std::string what;  // how messages name it: "139.3 GiB are free", "--memory-budget is 20.0 GiB"
  // What the GPU has free, less 3% (allocator rounding, what else starts on the GPU).
  static MemoryBudget free_memory(double free_bytes);
  static MemoryBudget flag(double gib_value);
};

// What a run that does not fit should change; empty when the plan fits the
// budget. Names the flags: a smaller --batch-size with a larger --grad-accum
// (the same tokens per step), --grad-checkpoint, a shorter --seq-len, or a
// smaller base format when the model alone does not fit.
std::string memory_advice(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq, int grad_accum,
                          const MemoryBudget& budget);

// The activation plan for a budget (--memory-budget): the fewest layers
// recomputed whole, then the fewest keeping only their GEMM outputs (their
// norms and SwiGLU/GELU, cheap pointwise work, are recomputed in backward),
// whose estimate fits. Recomputing a layer costs about a third of its GEMM
// FLOPs again; the pointwise tier costs almost nothing, so it goes first.
// With --grad-checkpoint the plan is that: every layer recomputed.
struct ActivationChoice {
  ModelOptions options;  // the given ones with recompute_layers and pointwise_layers set
  MemoryPlan memory;     // their estimate
  bool fits = false;     // false: not even recomputing every layer fits (memory.describe() is that plan)
  std::string describe(int n_layer) const;  // "32 layers: 20 keep everything, 4 keep GEMM outputs, 8 recomputed"
};
ActivationChoice plan_activations(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq,
                                  const MemoryBudget& budget);

double gib(double bytes);

}  // namespace qtrain
