// `--model random:<shape>`: a GPT-2 or LLaMA-family model of a named shape with random
// weights made on the fly, tensor by tensor, for speed and memory benchmarks
// of shapes whose checkpoints are too big to keep around (the 70B QLoRA run
// would need 140 GB of bf16 files). Nothing is read from disk; with a
// quantizing --method each weight is quantized as it is made, as a real
// checkpoint would be.
//
// Values: uniform with std 0.02 (HF's initializer_range) from a counter hash
// of (tensor name, index), so any thread count gives the same model; norm
// weights are ones, biases zeros. Data must be pre-tokenized (--format bin / input_ids):
// there is no tokenizer.
#include <cmath>
#include <functional>

#include "kernels/elementwise.h"
#include "kernels/error.h"
#include "models/synthetic_model.h"

namespace qtrain {
namespace {

struct Shape_ {
  const char* name;
  Arch arch;
  int vocab, layers, heads, kv_heads, d, ff;
  float theta;
  bool tied;
};

// Public architectures' hyperparameters (their config.json), and a tiny LLaMA
// whose every row is whole 64-weight blocks (tests of block-quantized bases).
constexpr Shape_ kShapes[] = {
    {"tiny-llama", Arch::Llama, 512, 2, 4, 2, 64, 128, 10000.f, false},
    {"gpt2", Arch::GPT2, 50257, 12, 12, 12, 768, 3072, 0.f, true},
    {"gpt2-medium", Arch::GPT2, 50257, 24, 16, 16, 1024, 4096, 0.f, true},
    {"smollm2-135m", Arch::Llama, 49152, 30, 9, 3, 576, 1536, 100000.f, true},
    {"llama-7b", Arch::Llama, 32000, 32, 32, 32, 4096, 11008, 10000.f, false},
    {"llama-13b", Arch::Llama, 32000, 40, 40, 40, 5120, 13824, 10000.f, false},
    {"llama-70b", Arch::Llama, 32000, 80, 64, 8, 8192, 28672, 10000.f, false},
};

class SyntheticSource : public WeightSource {
 public:
  SyntheticSource(std::string label, ModelConfig c) : label_(std::move(label)), c_(c) {}
  const std::string& path() const override { return label_; }
  std::vector<std::string> names() const override { return {}; }
  bool has(const std::string& name) const override { return !shape_of(name).empty(); }
  Shape shape(const std::string& name) const override {
    Shape s = shape_of(name);
    if (s.empty()) throw Error(label_ + ": no tensor '" + name + "' in a synthetic LLaMA");
    return s;
  }
  Tensor load_f32(const std::string& name) const override {
    Tensor t = Tensor::empty(shape(name), DType::F32);
    float* p = t.f32();
    const int64_t n = t.numel();
    const bool is_norm = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos;
    const bool is_bias = ends(name, ".bias");
    if (is_norm || is_bias) {
      for (int64_t i = 0; i < n; ++i) p[i] = is_norm && !is_bias ? 1.f : 0.f;
      return t;
    }
    const uint64_t seed = std::hash<std::string>{}(name);
    const float a = 0.02f * std::sqrt(3.f);  // uniform(-a, a) has std 0.02
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = a * (2.f * hash_uniform(seed, uint64_t(i)) - 1.f);
    return t;
  }

 private:
  static bool ends(const std::string& s, const char* suf) {
    std::string x(suf);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  }
  Shape shape_of(const std::string& n) const { return c_.arch == Arch::GPT2 ? gpt2_shape(n) : llama_shape(n); }
  // GPT-2 checkpoints name tensors without "transformer."; Conv1D weights are [in, out].
  Shape gpt2_shape(const std::string& n) const {
    const int64_t d = c_.d_model, ff = c_.d_ff;
    if (n == "wte.weight") return {c_.vocab_size, d};
    if (n == "wpe.weight") return {c_.max_pos, d};
    if (n == "ln_f.weight" || n == "ln_f.bias" || ends(n, "ln_1.weight") || ends(n, "ln_1.bias") ||
        ends(n, "ln_2.weight") || ends(n, "ln_2.bias") || ends(n, "attn.c_proj.bias") || ends(n, "mlp.c_proj.bias"))
      return {d};
    if (ends(n, "attn.c_attn.weight")) return {d, 3 * d};
    if (ends(n, "attn.c_attn.bias")) return {3 * d};
    if (ends(n, "attn.c_proj.weight")) return {d, d};
    if (ends(n, "mlp.c_fc.weight")) return {d, ff};
    if (ends(n, "mlp.c_fc.bias")) return {ff};
    if (ends(n, "mlp.c_proj.weight")) return {ff, d};
    return {};
  }
  Shape llama_shape(const std::string& n) const {
    const int64_t d = c_.d_model, hd = c_.head_dim, q = int64_t(c_.n_head) * hd, kv = int64_t(c_.n_kv_head) * hd;
    if (n == "model.embed_tokens.weight" || (n == "lm_head.weight" && !c_.tied_embeddings)) return {c_.vocab_size, d};
    if (n == "model.norm.weight" || ends(n, "input_layernorm.weight") || ends(n, "post_attention_layernorm.weight"))
      return {d};
    if (ends(n, "q_proj.weight")) return {q, d};
    if (ends(n, "k_proj.weight") || ends(n, "v_proj.weight")) return {kv, d};
    if (ends(n, "o_proj.weight")) return {d, q};
    if (ends(n, "gate_proj.weight") || ends(n, "up_proj.weight")) return {c_.d_ff, d};
    if (ends(n, "down_proj.weight")) return {d, c_.d_ff};
    return {};
  }
  std::string label_;
  ModelConfig c_;
};

}  // namespace

bool is_synthetic_model(const std::string& spec) { return spec.rfind("random:", 0) == 0; }

std::string synthetic_shapes() {
  std::string s;
  for (auto& x : kShapes) s += (s.empty() ? "" : ", ") + std::string(x.name);
  return s;
}

LoadedModel load_synthetic_model(const std::string& spec) {
  const std::string shape = spec.substr(7);
  for (auto& x : kShapes) {
    if (shape != x.name) continue;
    ModelConfig c;
    c.arch = x.arch;
    c.vocab_size = x.vocab;
    c.n_layer = x.layers;
    c.n_head = x.heads;
    c.n_kv_head = x.kv_heads;
    c.d_model = x.d;
    c.d_ff = x.ff;
    c.head_dim = x.d / x.heads;
    c.max_pos = x.arch == Arch::GPT2 ? 1024 : 4096;
    c.norm_eps = 1e-5f;
    c.rope_theta = x.theta;
    c.tied_embeddings = x.tied;
    c.attn_bias = c.mlp_bias = x.arch == Arch::GPT2;
    c.source = spec;
    LoadedModel m;
    m.config = c;
    m.weights = std::make_unique<SyntheticSource>(spec, c);
    return m;
  }
  throw Error("--model '" + spec + "': unknown synthetic shape '" + shape + "' (known: " + synthetic_shapes() + ")",
              ErrorKind::BadInput);
}

}  // namespace qtrain
