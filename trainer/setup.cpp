#include "trainer/setup.h"

#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "data/chat_format.h"
#include "kernels/device.h"
#include "models/gguf_file.h"
#include "models/model_registry.h"
#include "models/peft_options.h"

namespace qtrain {

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda" || name == "gpu") {
    if (!cuda_available())
      throw Error(std::string("--device cuda: ") +
                  (built_with_cuda() ? "no usable GPU was found" : "this qtrain was built without CUDA"));
    return Device::CUDA;
  }
  if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  throw Error("--device '" + name + "': expected auto, cpu or cuda");
}

std::shared_ptr<const Tokenizer> make_tokenizer(const TokenizerSource& src, const std::string& override_path,
                                                const std::string& model_label) {
  if (!override_path.empty()) {
    // a .gguf file or a registered model name: the vocabulary it carries
    if (is_gguf_path(override_path))
      return make_tokenizer(load_model(override_path).tokenizer, "", override_path);
    if (!std::filesystem::exists(override_path) && !registered_model_path(override_path).empty())
      return make_tokenizer(load_model(override_path).tokenizer, "", override_path);
    return Tokenizer::load(override_path);
  }
  if (!src.tokens.empty())
    return Tokenizer::from_vocab_merges(src.tokens, src.merges, src.token_types, src.pre, src.bos_id, src.eos_id);
  if (!src.path.empty()) return Tokenizer::load(src.path);
  return nullptr;  // pre-tokenized data needs none; Stream says so if text needs one
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path) {
  auto tok = make_tokenizer({}, path, path);
  if (!tok) throw Error("--tokenizer " + path + ": carries no tokenizer (no vocabulary in the file)");
  return tok;
}

BuiltModel build_model(const ModelSpec& spec) {
  BuiltModel b;
  b.loaded = load_model(spec.model);
  b.tokenizer = make_tokenizer(b.loaded.tokenizer, spec.tokenizer, spec.model);
  ModelOptions mo;
  mo.device = spec.device;
  mo.method = spec.method;
  mo.adapter_type = spec.adapter_type;
  mo.ia3_feedforward = spec.ia3_feedforward;
  mo.lora = spec.lora;
  mo.targets = spec.targets;
  mo.seed = spec.seed;
  mo.grad_checkpoint = spec.grad_checkpoint;
  mo.offload_checkpoints = spec.offload_checkpoints;
  mo.int8_threshold = spec.int8_threshold;
  mo.bitnet_warmup = spec.bitnet_warmup;
  mo.bitnet_subln = spec.bitnet_subln;
  mo.loftq_iters = spec.loftq_iters;
  mo.hqq_bits = spec.hqq_bits;
  mo.lowra_bits = spec.lowra_bits;
  if (!spec.adapter.empty()) {
    b.adapter = std::make_unique<PeftAdapter>(read_peft_adapter(spec.adapter, &b.loaded.config));
    mo = with_adapter_options(mo, *b.adapter);
  }
  if (spec.before_build) spec.before_build(b.loaded.config, mo);
  b.model = Model::create(b.loaded.config, *b.loaded.weights, mo);
  if (b.adapter) apply_peft_adapter(*b.model, *b.adapter);
  // What the build cached but training will not reuse (cuda_release_cached) goes back now, before
  // the first step: the free memory the run sees, and nvidia-smi's peak, are then the model's own.
  if (mo.device == Device::CUDA) {
    const size_t freed = cuda_release_cached();
    if (freed >= (size_t(64) << 20)) spdlog::info("build: gave back {:.2f} GiB of setup buffers", freed / 1073741824.0);
  }
  return b;
}

StreamConfig make_stream_config(const StreamSpec& spec, const BuiltModel& m, const Communicator& comm) {
  StreamConfig s;
  s.path = spec.path;
  s.split = spec.split;
  s.format = spec.format;
  s.fields = spec.fields;
  s.seq_len = spec.seq_len;
  s.batch_size = spec.batch_size;
  s.rank = comm.rank();
  s.world = comm.world();
  s.seed = spec.seed;
  s.shuffle = spec.train;
  s.loop = spec.train;
  s.pack = spec.pack;
  s.group_by_length = spec.group_by_length;
  s.source_max_len = spec.source_max_len;
  s.target_max_len = spec.target_max_len;
  s.vocab_size = m.loaded.config.vocab_size;
  s.chat = model_chat_renderer(m);
  return s;
}

std::shared_ptr<const ChatRenderer> model_chat_renderer(const BuiltModel& m) {
  const TokenizerSource& ts = m.loaded.tokenizer;
  const Tokenizer* tok = m.tokenizer.get();
  if (ts.chat_template.empty() || !tok) return nullptr;
  auto piece = [&](int32_t id) {
    if (id < 0 || id >= tok->vocab_size()) return std::string();
    int32_t one[1] = {id};
    return tok->decode(one);
  };
  return std::make_shared<JinjaChatRenderer>(ts.chat_template, piece(ts.bos_id), piece(ts.eos_id));
}

double peak_bf16_flops(const std::string& gpu_name) {
  auto has = [&](const char* s) { return gpu_name.find(s) != std::string::npos; };
  if (has("H100") || has("H200") || has("H20 ") || has("GH200")) return 989e12;
  if (has("B200")) return 2250e12;
  if (has("A100")) return 312e12;
  if (has("L40")) return 181e12;
  return 0.0;
}

std::string describe_params(const Model& m) {
  char buf[200];
  int64_t t = m.trainable_params(), all = m.total_params();
  std::snprintf(buf, sizeof buf, "trainable params: %lld || all params: %lld || trainable%%: %.4f", (long long)t,
                (long long)all, all ? 100.0 * double(t) / double(all) : 0.0);
  return buf;
}

}  // namespace qtrain
