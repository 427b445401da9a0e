// The training loop: data -> model forward/backward -> gradient reduction ->
// clip -> AdamW, with schedule, metrics, progress, periodic eval and atomic
// checkpoints. Rank 0 writes every file; every rank runs the same steps.
#pragma once
#include "trainer/train_config.h"

namespace qtrain {

// Runs the whole job; returns the process exit code. Errors throw qtrain::Error.
int run_training(const TrainConfig& cfg);

}  // namespace qtrain
