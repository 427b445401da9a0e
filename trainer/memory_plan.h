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
  double activations = 0;  // kept for backward over all layers (one input per layer with checkpointing)
  double transient = 0;    // one layer's backward, the loss chunk, a dequantized weight, library workspaces
  double total() const { return weights + optimizer + activations + transient; }
  std::string describe() const;  // "7.4 GiB (weights 3.9, optimizer 0.6, activations 2.4, transient 0.5)"
};

// One rank's memory for micro-batches of `batch` x `seq` tokens.
MemoryPlan estimate_train_memory(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq);

// What a run that does not fit should change; empty when the plan fits in
// `free_bytes`. Names the flags: a smaller --batch-size with a larger
// --grad-accum (the same tokens per step), --grad-checkpoint, a shorter
// --seq-len, or a smaller base format when the model alone does not fit.
std::string memory_advice(const ModelConfig& cfg, const ModelOptions& opt, int batch, int seq, int grad_accum,
                          double free_bytes);

double gib(double bytes);

}  // namespace qtrain
