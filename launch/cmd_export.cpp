// qtrain export: hand a trained adapter to other tools.
//   --format peft (default)   a PEFT adapter directory (PeftModel.from_pretrained)
//   --merge [--format hf]     an HF model directory with the adapter merged in
//   --format gguf-lora        a llama.cpp LoRA adapter (llama-cli --lora)
//   --merge --format gguf     a merged llama.cpp model (F16 or Q8_0)
//   --format ternary          a BitNet model (--method bitnet's output) in 2-bit ternary storage
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>

#include "launch/commands.h"
#include "models/asym4_export.h"
#include "models/bnb4_export.h"
#include "models/gguf_export.h"
#include "models/gguf_file.h"
#include "models/merged_model.h"
#include "models/model_registry.h"
#include "models/ternary_export.h"
#include "models/safetensors.h"
#include "trainer/durable_io.h"
#include "trainer/setup.h"

namespace qtrain::launch {

namespace fs = std::filesystem;

namespace {

struct ExportOptions {
  std::string model, adapter, out, format = "peft", dtype = "bf16", gguf_type = "f16", method = "lora", requantize;
  std::string tokenizer;  // --format gguf: the .gguf whose vocabulary the merged file embeds
  BaseFlags base;
  bool merge = false, overwrite = false;
};

bool within(const fs::path& p, const fs::path& dir) {
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  return d == dir.end();
}

// A directory export is written as checkpoints are (trainer/durable_io.h): into
// OUT.tmp-<pid>, fsynced, then swapped in, so a full disk or a kill leaves the
// earlier OUT or none, never a truncated one. The swap replaces OUT whole, so an
// OUT that holds anything needs --overwrite, and one that holds the model or
// adapter being read (or is the working directory) is refused.
// Checked before the model is read (a merge can take minutes) and again when writing.
fs::path check_export_dir(const ExportOptions& o) {
  const fs::path out = fs::weakly_canonical(fs::absolute(o.out));
  if (fs::exists(out) && !fs::is_directory(out)) throw Error("--out " + o.out + ": exists and is not a directory");
  if (within(fs::current_path(), out))
    throw Error("--out " + o.out + ": is the working directory or above it; give a new directory");
  // A registered --model name (smollm2-135m) is its file in the models cache dir.
  for (const std::string& src : {model_file_path(o.model), o.tokenizer, o.adapter})
    if (!src.empty() && fs::exists(src) && within(fs::weakly_canonical(fs::absolute(src)), out))
      throw Error("--out " + o.out + ": holds " + src + ", which this export reads; give another directory");
  if (fs::exists(out) && !fs::is_empty(out) && !o.overwrite)
    throw Error("--out " + o.out + ": exists and is not empty; add --overwrite to replace it (the whole directory)");
  return out;
}

void write_export_dir(const ExportOptions& o, const std::function<void(const std::string& dir)>& fill) {
  write_dir_atomically(check_export_dir(o).string(), fill);
}

// --format gguf / gguf-lora write one file: --out itself when it ends in .gguf,
// else NAME inside the --out directory.
std::string gguf_out_path(const ExportOptions& o, const char* name) {
  return is_gguf_path(o.out) ? o.out : (fs::path(o.out) / name).string();
}

// Checked before anything is loaded or created: the file is written beside
// itself and renamed over (models/gguf_writer.cpp), so an existing one is
// replaced only with --overwrite, and never when it is the model being read.
void check_gguf_out(const ExportOptions& o, const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error("--out " + path + ": is a directory, not a .gguf file");
  // A registered name (--model smollm2-135m) is its file in the models cache dir.
  for (const std::string& src : {o.model, o.tokenizer, o.adapter})
    if (!src.empty() && fs::equivalent(model_file_path(src), path, ec))
      throw Error("--out " + path + ": is " + (model_file_path(src) == src ? src : src + " (" + model_file_path(src) + ")") +
                  ", which this export reads; give another path");
  if (fs::exists(path, ec) && !o.overwrite) throw Error("--out " + path + ": exists; add --overwrite to replace it");
}

// Creates the --out directory of a .gguf file only once every check has passed.
void make_parent_dir(const std::string& path) {
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
}

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  throw Error("--dtype '" + s + "': expected f32, bf16 or f16");
}

// The trained BitNet model (or a bitnet-lora base) in 2-bit storage: the latent
// weights quantize on load to exactly the ternary weights they trained through.
int run_ternary_export(const ExportOptions& o) {
  if (o.method != "bitnet" && o.method != "bitnet-lora")
    throw Error("--format ternary: --method '" + o.method + "': expected bitnet (a --method bitnet run's model/) or bitnet-lora");
  if (!o.adapter.empty())
    throw Error("--format ternary holds the base only: drop --adapter (export the adapter with --format peft)");
  check_export_dir(o);
  ModelSpec ms;
  ms.model = o.model;
  ms.method = "bitnet-lora";
  ms.targets = {};
  apply_base_flags(o.base, ms);
  BuiltModel built = build_model(ms);
  write_export_dir(o, [&](const std::string& d) { save_ternary_model(d, ternary_state(*built.model), o.model, built.loaded.config); });
  size_t bytes = 0;
  for (const Linear* lin : built.model->linears()) bytes += lin->base().bytes();
  spdlog::info("wrote ternary model {} ({:.1f} MB of 2-bit Linear weights)", o.out, double(bytes) / 1e6);
  return 0;
}

int run_export(const ExportOptions& o) {
  if (o.format == "ternary") return run_ternary_export(o);
  if (o.adapter.empty()) throw Error("--adapter is required (except with --format ternary)");
  if (find_method(o.method).trains_base)
    throw Error("--method " + o.method + ": export works on adapters (an adapter method, on any base)");
  if (o.merge && o.format == "gguf-lora")
    throw Error("--merge with --format gguf-lora: a llama.cpp LoRA adapter is unmerged; for a merged model use "
                "--merge --format gguf");
  if (o.format == "gguf-lora") check_gguf_out(o, gguf_out_path(o, "adapter.gguf"));
  if (o.merge && o.format == "gguf") check_gguf_out(o, gguf_out_path(o, "model.gguf"));
  if (o.format == "peft" || o.format == "hf") check_export_dir(o);
  ModelSpec ms;
  ms.model = o.model;
  ms.method = o.method;  // quantized bases: --merge gives dequant(W) + s*B*A
  apply_base_flags(o.base, ms);
  ms.adapter = o.adapter;
  warn_if_base_differs(ms);
  BuiltModel built = build_model(ms);
  const LoadedModel& lm = built.loaded;
  Model* model = built.model.get();
  const PeftAdapter& a = *built.adapter;
  if (o.format == "gguf-lora") {
    if (lm.config.arch != Arch::Llama) throw Error("--format gguf-lora: llama.cpp adapters need a LLaMA-family model");
    if (a.type != "lora")
      throw Error("--format gguf-lora: llama.cpp adapters hold plain LoRA; " + o.adapter + " is a " + a.type +
                  " adapter (export it merged: --merge --format gguf)");
    if (!a.lora.patterns.empty())
      throw Error(o.adapter + "/adapter_config.json: rank_pattern / alpha_pattern cannot go into a llama.cpp adapter "
                  "(one alpha and one rank for all tensors); use --merge");
    std::vector<std::pair<std::string, Tensor>> t;
    for (Linear* lin : model->linears())
      if (lin->adapter())
        for (auto& [n, v] : lin->adapter()->tensors()) t.push_back({"base_model.model." + lin->name() + "." + n, v});
    float alpha = a.lora.rslora ? a.lora.alpha * std::sqrt(float(a.lora.r)) : a.lora.alpha;
    const std::string path = gguf_out_path(o, "adapter.gguf");
    make_parent_dir(path);
    export_gguf_lora(path, lm.config, t, alpha, a.lora.r);
    spdlog::info("wrote llama.cpp LoRA adapter {}", path);
    return 0;
  }
  if (!o.merge) {
    if (o.format != "peft") throw Error("--format '" + o.format + "' needs --merge (or use peft / gguf-lora)");
    write_export_dir(o, [&](const std::string& d) { save_peft_adapter(d, *model, o.model); });
    spdlog::info("wrote PEFT adapter {}", o.out);
    return 0;
  }
  if (has_asym4_base(*model) && o.format != "gguf" && o.requantize.empty()) {
    // QA-BLoRA: the adapter folds into the 4-bit zeros (models/asym4_export.h); the merge stays pure 4-bit.
    write_export_dir(o, [&](const std::string& d) { save_asym4_model(d, merged_asym4_state(*model), o.model, lm.config); });
    spdlog::info("wrote merged model {} (asymmetric 4-bit tiles; load it with --method qablora)", o.out);
    return 0;
  }
  auto tensors = model->hf_state_dict(true);
  if (o.format == "gguf") {
    if (lm.config.arch != Arch::Llama) throw Error("--format gguf: merged GGUF export needs a LLaMA-family model");
    GgmlType type = o.gguf_type == "q8_0" ? GgmlType::Q8_0 : o.gguf_type == "q4_0" ? GgmlType::Q4_0
                    : o.gguf_type == "f16" ? GgmlType::F16 : o.gguf_type == "f32" ? GgmlType::F32
                    : throw Error("--gguf-type '" + o.gguf_type + "': expected f16, q8_0, q4_0 or f32");
    const std::string path = gguf_out_path(o, "model.gguf");
    // A merged GGUF without a vocabulary is no model for llama.cpp: refuse instead of writing one.
    TokenizerSource tok = lm.tokenizer;
    if (!o.tokenizer.empty()) {
      if (!is_gguf_path(o.tokenizer))
        throw Error("--tokenizer " + o.tokenizer + ": a merged GGUF takes its vocabulary from a .gguf file "
                    "(HF tokenizer files are not converted to GGUF form)");
      tok = load_gguf_model(o.tokenizer).tokenizer;
    }
    if (tok.tokens.empty())
      throw Error(path + ": no tokenizer to embed: " + o.model + " carries none in GGUF form; give --tokenizer "
                  "FILE.gguf (e.g. the base's GGUF), or export --format hf");
    if (int64_t(tok.tokens.size()) != lm.config.vocab_size)
      throw Error("--tokenizer " + (o.tokenizer.empty() ? o.model : o.tokenizer) + ": " +
                  std::to_string(tok.tokens.size()) + " tokens for a model of vocabulary " +
                  std::to_string(lm.config.vocab_size));
    make_parent_dir(path);
    // A GGUF base (a path or a registered name) keeps its metadata keys (models/gguf_export.h).
    export_gguf_model(path, lm.config, tok, tensors, type, "qtrain-merged",
                      lm.gguf ? lm.gguf->metadata() : std::vector<std::pair<std::string, GgufValue>>{});
    spdlog::info("wrote merged GGUF model {}", path);
    return 0;
  }
  if (o.format != "hf" && o.format != "peft")
    throw Error("--format '" + o.format + "': expected peft, hf, gguf, gguf-lora or ternary");
  if (!o.requantize.empty()) {
    if (o.requantize != "nf4" && o.requantize != "fp4") throw Error("--requantize '" + o.requantize + "': expected nf4 or fp4");
    if (lm.config.arch != Arch::Llama) throw Error("--requantize: supported for LLaMA-family models");
    if (!fs::is_directory(o.model)) throw Error("--requantize: the base must be an HF model directory (its config.json is copied)");
  }
  write_export_dir(o, [&](const std::string& dir) {
    if (!o.requantize.empty()) {
      // The merged weights back in 4 bits, as transformers + bitsandbytes save a QLoRA base.
      std::set<std::string> quantize;
      for (Linear* lin : model->linears()) quantize.insert(lin->name() + ".weight");
      save_bnb4_model(dir, tensors, quantize, o.requantize == "nf4" ? quant::Code4::NF4 : quant::Code4::FP4,
                      (fs::path(o.model) / "config.json").string());
    } else {
      DType dt = parse_dtype(o.dtype);
      for (auto& [n, t] : tensors) t = t.to(Device::CPU, dt);
      save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
    }
    copy_model_files(o.model, lm.config, dir, o.requantize.empty());  // --requantize wrote its own config.json
  });
  if (!fs::is_directory(o.model))
    spdlog::info("config.json written from {}'s metadata; its tokenizer stays there (--tokenizer {})", o.model, o.model);
  spdlog::info("wrote merged model {} ({})", o.out, o.requantize.empty() ? o.dtype : o.requantize + " + double quant (bitsandbytes layout)");
  return 0;
}

}  // namespace

void register_export(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("export", "Export a trained adapter (PEFT, merged HF model, llama.cpp LoRA GGUF, merged GGUF) or a BitNet model in ternary storage.");
  add_config_option(*sub);
  auto o = std::make_shared<ExportOptions>();
  sub->add_option("--model", o->model, "the base model the adapter was trained on")->required();
  sub->add_option("--adapter", o->adapter, "PEFT adapter directory (e.g. OUT/adapter from qtrain train) or a llama.cpp LoRA adapter .gguf (--format peft converts it); not with --format ternary");
  sub->add_option("--out", o->out, "output directory (or .gguf path)")->required();
  sub->add_flag("--merge", o->merge, "fold the adapter into the base weights");
  sub->add_flag("--overwrite", o->overwrite,
                "replace an --out directory that is not empty (the whole directory: it is written beside it and "
                "swapped in, so a failed export leaves the old one), or an existing .gguf file");
  sub->add_option("--method", o->method,
                  "the --method the adapter was trained with (a quantized base merges into its dequantized weights): " +
                      method_list())
      ->capture_default_str();
  add_base_flags(*sub, o->base);
  sub->add_option("--format", o->format,
                  "peft | hf | gguf-lora | gguf | ternary (a --method bitnet model in 2-bit BitNet storage; load it "
                  "with --method bitnet-lora). With --merge, peft (the default) writes hf")
      ->check(CLI::IsMember({"peft", "hf", "gguf-lora", "gguf", "ternary"}))
      ->capture_default_str();
  sub->add_option("--dtype", o->dtype, "merged HF weights: f32 | bf16 | f16")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}))
      ->capture_default_str();
  sub->add_option("--requantize", o->requantize,
                  "with --merge --format hf: write the merged Linear weights as nf4 | fp4 with double quantization in "
                  "transformers' bitsandbytes 4-bit layout (loads with from_pretrained as a QLoRA base; qtrain "
                  "itself loads the float export)")
      ->check(CLI::IsMember({"nf4", "fp4"}));
  sub->add_option("--tokenizer", o->tokenizer,
                  "--format gguf: the .gguf file whose vocabulary the merged model embeds (default: the base's, "
                  "when it is a GGUF; an HF base needs this)");
  sub->add_option("--gguf-type", o->gguf_type, "merged GGUF weights: f16 | q8_0 | q4_0 | f32")
      ->check(CLI::IsMember({"f16", "q8_0", "q4_0", "f32"}))
      ->capture_default_str();
  sub->callback([&run, o] { run = [o] { return run_export(*o); }; });
}

}  // namespace qtrain::launch
