// Atomic training checkpoints. A checkpoint is a directory:
//   params.safetensors     trainable tensors by parameter name
//   optimizer.safetensors  AdamW moments ("<name>.exp_avg", "<name>.exp_avg_sq")
//   state.json             step, optimizer step count, RNG state, data-stream
//                          position, run config (the last three opaque JSON)
//   manifest.json          size + crc32 of each file above; written last
// save_checkpoint builds it with write_dir_atomically (trainer/durable_io.h):
// in DIR.tmp-<pid>, every file fsynced, then swapped in with renames. A crash
// at any point leaves DIR or DIR.old complete, and load_checkpoint finds
// whichever is; a failed write removes its DIR.tmp-<pid>. Only one process
// (rank 0) writes.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "models/params.h"
#include "trainer/optimizer.h"

namespace qtrain {

struct CheckpointState {
  int64_t step = 0;             // training steps completed
  int64_t optimizer_steps = 0;  // AdamW::steps() (bias correction), may trail step after skipped steps
  nlohmann::json rng = nlohmann::json::object();
  nlohmann::json data_position = nlohmann::json::object();
  nlohmann::json config = nlohmann::json::object();
  NamedTensors params;     // any device; loaded back as host F32
  NamedTensors optimizer;
  std::string source;      // set by load: the directory actually read (DIR or DIR.old)
};

// keep > 1 (--keep-checkpoints): the checkpoint this one replaces is kept as
// DIR-step<N> beside DIR, and only the newest keep - 1 of those stay.
void save_checkpoint(const std::string& dir, const CheckpointState& state, int keep = 1);

// Validates the manifest (every file's size and crc32) and returns the state
// with host tensors. A bad or missing file is a BadInput error naming it.
CheckpointState load_checkpoint(const std::string& dir);

// manifest.json's entry for one file of a checkpoint.
struct ManifestEntry {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};
// Parses manifest.json (`text`, named mpath in messages): format, version and
// an entry for each of params.safetensors, optimizer.safetensors, state.json.
std::map<std::string, ManifestEntry> parse_checkpoint_manifest(const std::string& text, const std::string& mpath);
// Parses state.json into s's step, optimizer_steps, rng, data_position, config.
void parse_checkpoint_state(const std::string& text, const std::string& spath, CheckpointState& s);

// The directory holding the last complete checkpoint for `dir` (DIR, or
// DIR.old after a crash mid-swap), or "" when there is none.
std::string find_checkpoint(const std::string& dir);

// Copies named tensors into the matching parameters; every parameter must be
// present with its shape, else a BadInput error naming `source`.
void restore_params(ParamSet& params, const NamedTensors& tensors, const std::string& source);

// The tensors of every parameter, as CheckpointState::params wants them.
NamedTensors param_tensors(const ParamSet& params);

}  // namespace qtrain
