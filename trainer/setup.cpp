#include "trainer/setup.h"

#include <cstdio>

#include "kernels/device.h"

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
  if (!override_path.empty()) return Tokenizer::load(override_path);
  if (!src.tokens.empty())
    return Tokenizer::from_vocab_merges(src.tokens, src.merges, src.token_types, src.pre, src.bos_id, src.eos_id);
  if (!src.path.empty()) return Tokenizer::load(src.path);
  return nullptr;  // pre-tokenized data needs none; Stream says so if text needs one
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
