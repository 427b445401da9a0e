#include "models/gguf_adapter.h"

#include <map>

#include "models/gguf_file.h"
#include "models/gguf_llama_names.h"
#include "models/gguf_weights.h"

namespace qtrain {

namespace {

const std::string kPrefix = "base_model.model.";

// The converted tensors, held in memory: an adapter is a few MB to a few hundred.
class GgufAdapterTensors : public AdapterTensors {
 public:
  explicit GgufAdapterTensors(std::string path) : path_(std::move(path)) {}
  const std::string& path() const override { return path_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& [name, t] : t_) n.push_back(name);
    return n;
  }
  const Shape* shape(const std::string& name) const override {
    auto it = t_.find(name);
    return it == t_.end() ? nullptr : &it->second.shape();
  }
  Tensor load_f32(const std::string& name) const override { return t_.at(name); }
  void add(const std::string& name, Tensor t) { t_.emplace(name, std::move(t)); }

 private:
  std::string path_;
  std::map<std::string, Tensor> t_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PeftAdapter read_gguf_lora_adapter(const std::string& path, const ModelConfig& cfg) {
  GgufFile f(path);
  const std::string type = f.get_string("general.type", "");
  if (type != "adapter")
    throw Error(path + ": general.type is " + (type.empty() ? "not set" : "'" + type + "'") +
                ", not 'adapter': this GGUF is not a llama.cpp LoRA adapter" +
                (type.empty() || type == "model" ? " (a GGUF model goes to --model)" : ""));
  const std::string kind = f.get_string("adapter.type", "");
  if (kind != "lora")
    throw Error(path + ": adapter.type is '" + kind + "'; qtrain reads LoRA adapters (adapter.type = lora)");
  const std::string arch = f.get_string("general.architecture", "");
  if (arch != "llama")
    throw Error(path + ": general.architecture is '" + arch + "'; qtrain reads llama.cpp adapters of LLaMA-family "
                "models (architecture 'llama')");
  if (cfg.arch != Arch::Llama) throw Error(path + ": a LLaMA adapter, and the model is not a LLaMA-family model");

  // Each module's pair, by HF module path.
  struct Pair {
    const GgufTensorInfo* a = nullptr;
    const GgufTensorInfo* b = nullptr;
  };
  std::map<std::string, Pair> pairs;
  for (const GgufTensorInfo& t : f.tensors()) {
    const bool is_a = ends_with(t.name, ".lora_a"), is_b = ends_with(t.name, ".lora_b");
    if (!is_a && !is_b)
      throw Error(path + ": tensor '" + t.name + "' is not a LoRA tensor (<base tensor>.lora_a / .lora_b)");
    const std::string hf = gguf_to_hf_llama_name(t.name.substr(0, t.name.size() - 7));
    if (!ends_with(hf, ".weight") || hf.find(".layers.") == std::string::npos || hf.find("norm") != std::string::npos)
      throw Error(path + ": tensor '" + t.name + "' adapts no linear layer of a LLaMA block");
    if (t.ne.size() != 2) throw Error(path + ": tensor '" + t.name + "' is not 2-D");
    if (!ggml_type_info(t.type).dequantizable)
      throw Error(path + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) + ", which qtrain cannot read");
    Pair& p = pairs[hf.substr(0, hf.size() - 7)];
    (is_a ? p.a : p.b) = &t;
  }
  if (pairs.empty()) throw Error(path + ": holds no LoRA tensors");

  PeftAdapter a;
  a.dir = path;
  a.type = "lora";
  std::map<int, int> rank_count;
  std::map<std::string, int> rank_of;
  auto tensors = std::make_unique<GgufAdapterTensors>(path);
  for (auto& [module, p] : pairs) {
    if (!p.a || !p.b)
      throw Error(path + ": the LoRA pair of " + module + " has no " + (p.a ? "lora_b" : "lora_a") + " tensor");
    const int64_t r = p.a->ne[1];
    if (r < 1 || p.b->ne[0] != r)
      throw Error(path + ": '" + p.a->name + "' has rank " + std::to_string(r) + " and '" + p.b->name + "' rank " +
                  std::to_string(p.b->ne[0]));
    const std::string weight = module + ".weight";
    const int heads = rope_permuted_heads(weight, cfg.n_head, cfg.n_kv_head);
    const int64_t rows = p.b->ne[1];
    if (heads > 0 && (rows % heads != 0 || (rows / heads) % 2 != 0))
      throw Error(path + ": '" + p.b->name + "' has " + std::to_string(rows) + " rows, not " + std::to_string(heads) +
                  " even-sized heads of this model: the adapter is for another model");
    tensors->add(kPrefix + module + ".lora_A.weight", gguf_tensor_f32(f, *p.a, 0));
    tensors->add(kPrefix + module + ".lora_B.weight", gguf_tensor_f32(f, *p.b, heads));
    a.modules.push_back(module);
    ++rank_count[int(r)];
    rank_of[module] = int(r);
  }
  // The most common rank is r; the others are rank_pattern entries (full module paths, as peft writes them).
  int r = 0, most = 0;
  for (auto& [rank, n] : rank_count)
    if (n > most) r = rank, most = n;
  const double alpha = f.get_float("adapter.lora.alpha", 0.0);
  a.lora.r = r;
  a.lora.alpha = alpha > 0 ? float(alpha) : float(r);  // llama.cpp: no alpha = scale 1
  a.lora.dropout = 0.f;
  for (auto& [module, rank] : rank_of) {
    if (rank == r) continue;
    a.lora.patterns.rank.push_back({module, rank});
    if (alpha <= 0) a.lora.patterns.alpha.push_back({module, float(rank)});
  }
  a.tensors = std::move(tensors);
  return a;
}

}  // namespace qtrain
