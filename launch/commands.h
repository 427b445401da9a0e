// Each subcommand lives in its own launch/cmd_*.cpp and registers itself on
// the CLI11 app. A registered command sets `run` to the work it does; main()
// runs it and is the one place that turns qtrain::Error into an exit code.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>

namespace qtrain {
struct ModelSpec;
struct TrainConfig;
}

namespace qtrain::launch {

using Runner = std::function<int()>;  // returns the process exit code

// --tokenizer of the commands that take a tokenizer alone (tokenize, data shard): every
// form trainer/setup.h's load_tokenizer reads.
inline constexpr const char* kTokenizerForms =
    "a directory with encoder.json+vocab.bpe (GPT-2) or vocab.json+merges.txt, an HF tokenizer.json or a directory "
    "holding one, or a .gguf file or registered model name (smollm2-135m): the vocabulary it embeds";

void register_train(CLI::App& app, Runner& run);
void register_eval(CLI::App& app, Runner& run);
void register_generate(CLI::App& app, Runner& run);
void register_export(CLI::App& app, Runner& run);
void register_tokenize(CLI::App& app, Runner& run);
void register_data(CLI::App& app, Runner& run);
void register_prepare(CLI::App& app, Runner& run);
void register_report(CLI::App& app, Runner& run);

// `train --method qlora-bitnet`: not a way to hold a base but a recipe of
// phases (QLoRA, merge, BitNet QAT, ternary export) run as child processes
// (launch/recipe_qlora_bitnet.cpp).
inline constexpr const char* kQloraBitnetRecipe = "qlora-bitnet";
int run_qlora_bitnet(const TrainConfig& c);

// `--config FILE.json` (keys as the long option names, '-' or '_'):
// add_config_option documents it on a subcommand; expand_config rewrites the
// arguments (subcommand first) into plain flags, leaving out every option the
// command line gives itself, so flags override the file. Defined in config.cpp.
void add_config_option(CLI::App& sub);

// --seed's check: a whole number >= 0. The seeds are unsigned, so CLI11 would
// take -1 as 2^64 - 1 without a word (an HF user may mean "random" by it).
inline CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& v) {
        return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos
                   ? std::string()
                   : "--seed must be a whole number >= 0 (got " + v + "); the same seed gives the same run";
      },
      "INT>=0");
}

// The train flags that change how the frozen base is built rather than the
// adapter, which eval, generate and export need again to rebuild the base an
// adapter was trained on (defined in launch/base_flags.cpp).
struct BaseFlags {
  int loftq_iters = -1;
  int hqq_bits = 4;
  double lowra_bits = 2.0;
  bool bitnet_subln = true;
};
void add_base_flags(CLI::App& sub, BaseFlags& f);
void apply_base_flags(const BaseFlags& f, ModelSpec& ms);
// eval, generate and export of an adapter from qtrain's OUT/adapter: OUT/run.json
// says how training built the base. A base built otherwise (another --method,
// --hqq-bits, --lowra-bits, --loftq-iters) gives other numbers without an error,
// so this names the flags that would rebuild it ("" when it matches or there is
// no run.json beside the adapter); warn_if_base_differs logs it.
std::string base_differs_from_training(const ModelSpec& ms);
void warn_if_base_differs(const ModelSpec& ms);
std::vector<std::string> expand_config(CLI::App& app, std::vector<std::string> args);

// Which flags the last expand_config took from its file, so that an error about
// one of them (CLI11's "Could not convert: --seq-len = 1e10", a range check's
// "--lora-r must be at least 1") names the file and its key, as type errors do.
struct ConfigOrigin {
  std::string path;                           // the --config file; empty without one
  std::map<std::string, std::string> key_of;  // "--seq-len" -> "seq_len", as the file spells it
  // `message` prefixed with "FILE: key 'K': " when it is about a flag from the file: it starts
  // with the flag, or is CLI11's conversion error for it; otherwise unchanged.
  std::string locate(const std::string& message) const;
};
const ConfigOrigin& config_origin();

}  // namespace qtrain::launch
