// The glue between loaders and the data layer that neither may own:
// picking the device, building the tokenizer a model carries, and building
// the model for a method and the data stream for it. Every subcommand builds
// both through here, so train, its evaluation, eval, export and generate
// cannot drift apart.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_format.h"
#include "data/stream.h"
#include "data/tokenizer.h"
#include "dist/communicator.h"
#include "models/model.h"
#include "models/peft_io.h"

namespace qtrain {

// How to build a model, from any subcommand's flags.
struct ModelSpec {
  std::string model;      // HF dir, .gguf, registered name, or random:<shape>
  std::string tokenizer;  // overrides the model's ("" = the model's own)
  std::string method = "lora";
  std::string adapter_type;  // "" = the method's default (lora, dora, ia3: models/adapters/adapter_type.h)
  std::string adapter;    // a PEFT adapter directory to load: its type, rank, alpha and targets replace these
  Device device = Device::CPU;
  LoraOptions lora;
  std::vector<std::string> targets{"all-linear"};  // empty: no adapter at all (a base-only eval)
  uint64_t seed = 0;
  bool grad_checkpoint = false;
  bool offload_checkpoints = false;
  float int8_threshold = 6.f;
  int64_t bitnet_warmup = 0;
  bool bitnet_subln = true;
  int loftq_iters = -1;  // LoftQ initialisation of a quantized base + LoRA (models/loftq.h); -1 = the method's default
  std::optional<std::vector<std::string>> ia3_feedforward;  // unset = peft's default for the model
  int hqq_bits = 4;
  double lowra_bits = 2.0;
  // Runs after the config is read and before anything is built (train's
  // memory check and activation plan): the model's shape and the final
  // options, which it may amend (the plan's recompute counts).
  std::function<void(const ModelConfig&, ModelOptions&)> before_build;
};

struct BuiltModel {
  LoadedModel loaded;  // config, weights, tokenizer source
  std::shared_ptr<const Tokenizer> tokenizer;  // null when the model carries none and none was given
  std::unique_ptr<Model> model;
  std::unique_ptr<PeftAdapter> adapter;  // the adapter read from spec.adapter, null without one
};
BuiltModel build_model(const ModelSpec& spec);

// What to stream, from any subcommand's flags.
struct StreamSpec {
  std::string path, split = "train", format = "auto", fields = "code";
  int seq_len = 512, batch_size = 8;
  uint64_t seed = 0;
  bool pack = true;
  bool group_by_length = false;                // unpacked: batches of similar lengths
  int source_max_len = 0, target_max_len = 0;  // prompt / response tokens kept (0 = all)
  bool train = true;  // shuffled and looping; false: one ordered pass (evaluation)
};
// The stream configuration for a built model: its vocabulary bound and its
// chat template (for `messages` data), sharded over comm's ranks.
StreamConfig make_stream_config(const StreamSpec& s, const BuiltModel& m, const Communicator& comm);

// The chat template a built model carries (GGUF tokenizer.chat_template, or an
// HF directory's tokenizer_config.json) with its bos/eos token texts, as
// training renders `messages` data and generate --chat renders a turn; null
// when it carries none or has no tokenizer.
std::shared_ptr<const ChatRenderer> model_chat_renderer(const BuiltModel& m);

// "auto" -> CUDA when a GPU is usable, else CPU; "cpu"; "cuda" (an error without a GPU).
Device resolve_device(const std::string& name);

// The model's tokenizer: `override_path` if given, else what the loader found
// (an HF dir's tokenizer files, or a GGUF's embedded vocabulary); null if none.
std::shared_ptr<const Tokenizer> make_tokenizer(const TokenizerSource& src, const std::string& override_path,
                                                const std::string& model_label);

// A tokenizer on its own (tokenize, data shard --tokenizer): what make_tokenizer takes as an
// override (a tokenizer dir or tokenizer.json, a .gguf file or a registered model name, whose
// embedded vocabulary it is); a .gguf without one is an error naming it, never null.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path);

// Dense bf16 tensor-core peak of a GPU by name (H100/H200 SXM 989 TFLOP/s,
// A100 312), for MFU; 0 when unknown.
double peak_bf16_flops(const std::string& gpu_name);

// A line like peft's print_trainable_parameters().
std::string describe_params(const Model& m);

}  // namespace qtrain
