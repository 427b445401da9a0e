// `qtrain train --resume DIR` alone continues a run: the checkpoint's config
// block holds every setting of the interrupted run. Options given with
// --resume override it; a changed value is logged as a deliberate change.
#pragma once
#include <set>
#include <string>

#include "trainer/train_config.h"

namespace qtrain {

// `cli`: the config as parsed; `given`: the keys (to_json's names, e.g.
// "lr", "batch_size", "pack") that were set explicitly. Without cli.resume
// returns cli unchanged. Without a given --out, OUT is the folder holding the checkpoint.
// A resume dir without a checkpoint is a BadInput error naming it.
TrainConfig merge_resume_config(const TrainConfig& cli, const std::set<std::string>& given);

// The config block a checkpoint stores: to_json(c) with the relative paths
// that exist (model, tokenizer, data, eval_data) made absolute, so that
// --resume DIR alone works from any working directory.
nlohmann::json checkpoint_config(const TrainConfig& c);

// The checkpoint directory --resume DIR refers to (DIR/checkpoint, or DIR
// itself, each also as .old after a crash mid-swap); "" when none.
std::string resume_checkpoint_dir(const std::string& resume);

}  // namespace qtrain
