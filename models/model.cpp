#include "models/model.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <unordered_map>

#include "kernels/device.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "models/loftq.h"

namespace qtrain {

std::unique_ptr<Model> make_gpt2(const ModelConfig& cfg, const ModelOptions& opt);   // models/gpt2.cpp
std::unique_ptr<Model> make_llama(const ModelConfig& cfg, const ModelOptions& opt);  // models/llama.cpp

std::unique_ptr<Model> Model::create(const ModelConfig& cfg, const WeightSource& src, const ModelOptions& opt) {
  find_method(opt.method);  // an unknown name fails here, listing the registered ones
  std::unique_ptr<Model> m = cfg.arch == Arch::GPT2 ? make_gpt2(cfg, opt) : make_llama(cfg, opt);
  m->finish_build(src);
  return m;
}

void Model::release_adapter_state(int layer) {
  for (Linear* lin : linears_)
    if (lin->layer() == layer && lin->adapter()) lin->adapter()->release_saved();
}

ModelFootprint Model::footprint(const ModelConfig& cfg, const ModelOptions& opt) {
  find_method(opt.method);
  std::unique_ptr<Model> m = cfg.arch == Arch::GPT2 ? make_gpt2(cfg, opt) : make_llama(cfg, opt);
  ModelFootprint f;
  f.trainable = m->params_.numel();
  const LayerColumns c = m->layer_columns();
  f.kept_cols = c.kept, f.kept_f32_cols = c.kept_f32, f.pointwise_cols = c.pointwise, f.backward_cols = c.backward;
  for (const auto& s : m->slots_)
    if (s->param == SIZE_MAX)
      f.frozen_slots += std::accumulate(s->shape.begin(), s->shape.end(), int64_t(1), std::multiplies<>());
  for (const Linear* lin : m->linears_) {
    const int64_t n = lin->in() * lin->out();
    (lin->trainable() ? f.trained_linear : f.frozen_linear) += n;
    f.largest_linear = std::max(f.largest_linear, n);
    if (lin->adapter()) {
      const Adapter::SavedColumns s = lin->adapter()->saved_columns();
      f.adapter_cols.insert(f.adapter_cols.end(), s.act.begin(), s.act.end());
      f.adapter_bytes += s.bytes;
      ++f.adapted;
    }
  }
  return f;
}

Model::Model(const ModelConfig& cfg, const ModelOptions& opt)
    : cfg_(cfg), opt_(opt), method_(&find_method(opt.method)),
      act_dtype_(opt.device == Device::CUDA ? DType::BF16 : DType::F32) {
  // --loftq-iters -1 (the default): the method's own recipe (0 but for LowRA)
  if (opt_.loftq_iters == -1) opt_.loftq_iters = method_->loftq_iters;
  check_loftq(*method_, !method_->trains_base && !(opt.adapter_type.empty() && method_->adapter.empty()),
              opt_.loftq_iters);
  if (method_->trains_base) {
    if (!opt.adapter_type.empty())
      throw Error("--adapter-type " + opt.adapter_type + ": --method " + opt.method + " trains every weight, without adapters");
    return;
  }
  const std::string& type = opt.adapter_type.empty() ? method_->adapter : opt.adapter_type;
  if (type.empty()) return;
  adapter_type_ = &find_adapter_type(type);
  if (adapter_type_->defaults) adapter_type_->defaults(cfg.arch, opt_);
}

WeightSlot& Model::slot(const std::string& name, const Shape& shape, int layer, bool decay) {
  auto s = std::make_unique<WeightSlot>();
  s->name = name;
  s->shape = shape;
  s->decay = decay;
  if (method_->trains_base) s->param = params_.declare(name, shape, decay, layer);
  slots_.push_back(std::move(s));
  return *slots_.back();
}

// peft's rule for a target_modules entry: the module path itself or a dotted suffix of it.
static bool target_matches(const std::string& module, const std::string& t) {
  if (t == "all-linear" || t == "all") return true;
  return module == t || (module.size() > t.size() && module.compare(module.size() - t.size(), t.size(), t) == 0 &&
                         module[module.size() - t.size() - 1] == '.');
}

bool Model::targeted(const std::string& module) const {
  for (auto& t : opt_.targets)
    if (target_matches(module, t)) return true;
  return false;
}

std::vector<std::string> Model::unmatched_targets() const {
  std::vector<std::string> out;
  for (auto& t : opt_.targets)
    if (std::none_of(linears_.begin(), linears_.end(), [&](const Linear* l) { return target_matches(l->name(), t); }))
      out.push_back(t);
  return out;
}

std::vector<std::string> Model::linear_kinds() const {
  std::vector<std::string> out;
  for (const Linear* l : linears_) {
    // The path after the layer index ("model.layers.3.self_attn.q_proj" -> "self_attn.q_proj").
    const std::string& n = l->name();
    std::string kind = n;
    for (size_t dot = n.find('.'); dot != std::string::npos; dot = n.find('.', dot + 1)) {
      size_t next = n.find('.', dot + 1);
      if (next != std::string::npos && next > dot + 1 &&
          n.find_first_not_of("0123456789", dot + 1) == next) {
        kind = n.substr(next + 1);
        break;
      }
    }
    if (std::find(out.begin(), out.end(), kind) == out.end()) out.push_back(kind);
  }
  return out;
}

Linear& Model::linear(const std::string& module, int64_t in, int64_t out, bool bias, int layer) {
  linear_storage_.push_back(std::make_unique<Linear>(module, in, out, bias, layer));
  Linear& lin = *linear_storage_.back();
  linears_.push_back(&lin);
  if (method_->trains_base) {
    lin.declare_trainable(params_);
  } else if (adapter_type_ && targeted(module)) {
    auto a = adapter_type_->make({module, in, out, opt_});
    a->declare(params_, module, layer);
    lin.set_adapter(std::move(a));
  }
  return lin;
}

static Tensor load_checked(const WeightSource& src, const std::string& name, const Shape& expect, bool transpose) {
  if (!src.has(name)) throw Error(src.path() + ": missing tensor '" + name + "'");
  Tensor t = src.load_f32(name);
  Shape stored = expect;
  if (transpose) std::swap(stored[0], stored[1]);
  if (t.shape() != stored) {
    // qtrain's own packed exports read as floats only through the method that wrote them.
    std::string packed;
    if (src.has(name + ".ternary_scale"))
      packed = "BitNet ternary codes (export --format ternary); load it with --method bitnet-lora";
    else if (src.has(name + ".asym4_scale"))
      packed = "asymmetric 4-bit codes (a QA-BLoRA merged export); load it with --method qablora";
    throw Error(src.path() + ": tensor '" + name + "' has shape " + shape_str(t.shape()) + " but the config implies " +
                shape_str(stored) + (packed.empty() ? "" : ": it holds " + packed));
  }
  if (!transpose) return t;
  Tensor r = Tensor::empty(expect, DType::F32);
  const float* s = t.f32();
  float* d = r.f32();
  int64_t rows = expect[0], cols = expect[1];
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) d[i * cols + j] = s[j * rows + i];
  return r;
}

void Model::finish_build(const WeightSource& src) {
  params_.allocate(opt_.device);
  uint64_t k = 0;
  for (auto& s : slots_) {
    Tensor host = load_checked(src, source_name(s->name), s->shape, false);
    total_params_ += host.numel();
    if (s->param != SIZE_MAX) {
      s->value = params_[s->param].value;
      s->grad = params_[s->param].grad;
      s->value.copy_from(host);
    } else {
      s->value = host.to(opt_.device, act_dtype_);
    }
  }
  // Requests for the frozen Linears `pick` selects, each loading its float
  // weight afresh; held in one place so the requests' references stay valid.
  struct Requests {
    std::vector<Linear*> lins;
    std::vector<std::string> names;
    std::vector<std::function<Tensor()>> loads;
    std::vector<BaseRequest> reqs;
  };
  const auto requests = [&](const std::function<bool(const Linear*)>& pick, const BasePlan* plan) {
    auto r = std::make_unique<Requests>();
    for (Linear* lin : linears_)
      if (!lin->trainable() && pick(lin)) {
        r->lins.push_back(lin);
        r->names.push_back(source_name(lin->name() + ".weight"));
      }
    r->loads.reserve(r->lins.size());
    for (size_t i = 0; i < r->lins.size(); ++i) {
      Linear* lin = r->lins[i];
      const std::string& wname = r->names[i];
      if (!src.has(wname)) throw Error(src.path() + ": missing tensor '" + wname + "'");
      r->loads.push_back([&src, &wname, lin, this] {
        return load_checked(src, wname, {lin->out(), lin->in()}, transposed_weights());
      });
      r->reqs.push_back(BaseRequest{src, wname, lin->out(), lin->in(), r->loads.back(), opt_, plan});
    }
    return r;
  };
  // A method that plans over the whole model first sees every frozen Linear.
  std::shared_ptr<const BasePlan> plan;
  if (method_->make_base && method_->plan_bases)
    plan = method_->plan_bases(requests([](const Linear*) { return true; }, nullptr)->reqs);
  // LoftQ's bases, built for all targeted Linears at once (models/loftq.h)
  std::vector<LoftqBuilt> loftq_built;
  std::unordered_map<const Linear*, size_t> loftq_index;
  if (method_->make_base && opt_.loftq_iters > 0) {
    warn_loftq_scale(opt_.lora.scale());
    const auto r = requests([](const Linear* lin) { return lin->adapter() != nullptr; }, plan.get());
    std::vector<const Adapter*> adapters;
    for (size_t i = 0; i < r->lins.size(); ++i) {
      adapters.push_back(r->lins[i]->adapter());
      loftq_index[r->lins[i]] = i;
    }
    loftq_built = loftq_make_bases(*method_, r->reqs, adapters, opt_.loftq_iters);
  }
  std::function<std::unique_ptr<BaseWeight>(Tensor)> wrap;
  if (method_->wrap_trainable) wrap = [&](Tensor master) { return method_->wrap_trainable(master, opt_); };
  for (Linear* lin : linears_) {
    lin->bind(params_, wrap);
    const std::string wname = source_name(lin->name() + ".weight");
    // The float weight is loaded only when something asks for it: a method
    // that keeps a pre-quantized base never makes a float copy.
    Tensor w;
    const std::function<Tensor()> load_w = [&]() -> Tensor {
      if (!w.defined()) w = load_checked(src, wname, {lin->out(), lin->in()}, transposed_weights());
      return w;
    };
    Tensor b;
    LowRankPair loftq_init;  // the adapter's start under --loftq-iters
    if (lin->has_bias()) b = load_checked(src, source_name(lin->name() + ".bias"), {lin->out()}, false);
    total_params_ += lin->out() * lin->in() + (b.defined() ? b.numel() : 0);
    if (lin->trainable()) {
      lin->weight_param(params_)->value.copy_from(load_w());
      if (b.defined()) lin->bias_param(params_)->value.copy_from(b);
    } else if (method_->make_base) {
      // only the blocks' Linear layers are quantized (embeddings, norms and
      // lm_head are slots and stay dense), as bitsandbytes + peft do
      if (!src.has(wname)) throw Error(src.path() + ": missing tensor '" + wname + "'");
      const BaseRequest req{src, wname, lin->out(), lin->in(), load_w, opt_, plan.get()};
      const auto done = loftq_index.find(lin);
      if (done != loftq_index.end()) loftq_init = std::move(loftq_built[done->second].init);
      lin->set_frozen(done != loftq_index.end() ? std::move(loftq_built[done->second].base) : method_->make_base(req),
                      b.defined() ? b.to(opt_.device, act_dtype_) : Tensor());
    } else {
      lin->set_frozen(std::make_unique<DenseWeight>(load_w().to(opt_.device, act_dtype_)),
                      b.defined() ? b.to(opt_.device, act_dtype_) : Tensor());
    }
    if (lin->adapter()) {
      lin->adapter()->bind_and_init(params_, opt_.seed * 1000003ull + k++, lin->base());
      if (loftq_init.a.defined()) lin->adapter()->init_low_rank(loftq_init.b, loftq_init.a);
      for (auto& [n, t] : lin->adapter()->tensors()) total_params_ += t.numel();
    }
  }
}

void Model::set_step(int64_t step) {
  for (Linear* lin : linears_) lin->base().set_step(step);
}

std::vector<std::pair<std::string, Tensor>> Model::hf_state_dict(bool merge_adapters) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& s : slots_) out.push_back({s->name, s->value.to(Device::CPU, DType::F32)});
  for (Linear* lin : linears_) {
    Tensor w = lin->base().dense_f32();
    if (merge_adapters && lin->adapter()) add_inplace(w, lin->adapter()->delta_f32(lin->base()));
    if (transposed_weights()) {
      Tensor t = Tensor::empty({w.size(1), w.size(0)}, DType::F32);
      for (int64_t i = 0; i < w.size(0); ++i)
        for (int64_t j = 0; j < w.size(1); ++j) t.f32()[j * w.size(0) + i] = w.f32()[i * w.size(1) + j];
      w = t;
    }
    out.push_back({lin->name() + ".weight", w});
    if (lin->bias().defined()) {
      Tensor b = lin->bias().to(Device::CPU, DType::F32);
      if (merge_adapters && lin->adapter()) lin->adapter()->merge_bias(b);
      out.push_back({lin->name() + ".bias", b});
    }
  }
  return out;
}

int64_t Model::trainable_params() const {
  int64_t n = 0;
  for (auto& p : params_.params()) {
    int64_t c = 1;
    for (auto d : p.shape) c *= d;
    n += c;
  }
  return n;
}

uint64_t Model::dropout_seed(int l, int k) const {
  // splitmix-style mixing: distinct per (run seed, step, layer, module).
  uint64_t z = opt_.seed * 0x9E3779B97F4A7C15ull ^ (step_counter_ << 20) ^ (uint64_t(l + 1) << 8) ^ uint64_t(k);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

LossSum Model::forward(const TokenBatch& b, float grad_scale) {
  mode_ = grad_scale > 0.f ? ForwardMode::Train : ForwardMode::Eval;
  const bool training_ = mode_ == ForwardMode::Train;
  ++step_counter_;
  B_ = b.B;
  T_ = b.T;
  const int64_t N = int64_t(b.B) * b.T, C = cfg_.d_model;
  for (int64_t i = 0; i < N; ++i)
    if (b.inputs[i] < 0 || b.inputs[i] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(b.inputs[i]) + " is outside the model's vocabulary (" +
                  std::to_string(cfg_.vocab_size) + ")");
  if (position_embedding() && b.T > cfg_.max_pos)
    throw Error("sequence length " + std::to_string(b.T) + " exceeds the model's " + std::to_string(cfg_.max_pos) +
                " positions (n_positions); lower --seq-len (rows of input_ids data are used whole: shorten them)");
  ids_ = Tensor::wrap(const_cast<int32_t*>(b.inputs), {N}, DType::I32).to(opt_.device);
  LossSum r;
  if (b.targets) {
    targets_ = Tensor::wrap(const_cast<int32_t*>(b.targets), {N}, DType::I32).to(opt_.device);
    for (int64_t i = 0; i < N; ++i) r.count += b.targets[i] != -100;
  }
  const int L = cfg_.n_layer;
  xs_.assign(size_t(L + 1), Tensor());
  parked_.assign(size_t(L), false);
  xs_[0] = Tensor::empty({N, C}, act_dtype_, opt_.device);
  WeightSlot* wpe = position_embedding();
  embedding_forward(xs_[0], ids_, token_embedding().value, wpe ? wpe->value : Tensor(), b.T);
  // A parked input's device block is freed one layer later, after the compute stream has waited for
  // its copy: the copy of layer l's input overlaps layer l + 1's forward.
  int parking = -1;
  auto park_done = [&] {
    if (parking < 0) return;
    parking_->wait_parked(parking);
    xs_[size_t(parking)] = Tensor();
    parking = -1;
  };
  for (int l = 0; l < L; ++l) {
    const LayerKeep keep = training_ ? opt_.layer_keep(l) : LayerKeep::None;
    xs_[size_t(l + 1)] = Tensor::empty({N, C}, act_dtype_, opt_.device);
    layer_forward(l, xs_[size_t(l)], xs_[size_t(l + 1)], training_, keep);
    if (training_ && keep == LayerKeep::None) release_adapter_state(l);  // the recompute saves it again
    // Without backward only the current residual is needed.
    if (!training_) xs_[size_t(l)] = Tensor();
    if (training_ && opt_.parks(l)) {
      if (!parking_) parking_ = std::make_shared<HostParking>();
      parking_->park(l, xs_[size_t(l)].raw(), xs_[size_t(l)].nbytes());
      park_done();
      parking = l;
      parked_[size_t(l)] = true;
    }
  }
  park_done();
  lnf_ = Tensor::empty({N, C}, act_dtype_, opt_.device);
  final_norm_forward(lnf_, xs_[size_t(L)]);
  if (!b.targets) return r;
  WeightSlot& head = lm_head();
  dlnf_ = training_ ? Tensor::empty({N, C}, act_dtype_, opt_.device) : Tensor();
  r.sum = lm_head_cross_entropy(dlnf_, training_ ? head.grad : Tensor(), lnf_, head.value, targets_, grad_scale);
  return r;
}

void Model::backward() {
  QT_CHECK(mode_ == ForwardMode::Train && dlnf_.defined(), "backward() without a training forward()");
  const int L = cfg_.n_layer;
  const int64_t N = int64_t(B_) * T_, C = cfg_.d_model;
  Tensor dx = Tensor::empty({N, C}, act_dtype_, opt_.device);
  final_norm_backward(dx, dlnf_, xs_[size_t(L)]);
  dlnf_ = Tensor();
  lnf_ = Tensor();
  // A parked input comes back one layer ahead: layer l - 1's copy overlaps layer l's recompute and backward.
  auto fetch = [&](int l) {
    xs_[size_t(l)] = Tensor::empty({N, C}, act_dtype_, opt_.device);
    parking_->fetch(l, xs_[size_t(l)].raw());
  };
  for (int l = L - 1; l >= 0; --l) {
    if (parked_[size_t(l)] && !xs_[size_t(l)].defined()) fetch(l);  // the top parked layer: not fetched ahead
    if (l > 0 && parked_[size_t(l - 1)]) fetch(l - 1);
    if (parked_[size_t(l)]) parking_->wait_fetched(l);
    if (opt_.layer_keep(l) == LayerKeep::None) {
      // Recompute this layer's activations (same dropout seeds) right before
      // its backward; its output is xs_[l + 1], kept from the first forward.
      mode_ = ForwardMode::Recompute;
      layer_forward(l, xs_[size_t(l)], Tensor(), true, LayerKeep::All);
      mode_ = ForwardMode::Train;
    }
    layer_backward(l, xs_[size_t(l)], dx);
    xs_[size_t(l + 1)] = Tensor();
    if (on_layer_grads_ready) on_layer_grads_ready(l);
  }
  WeightSlot* wpe = position_embedding();
  Tensor dwte = token_embedding().grad;
  Tensor dwpe = wpe ? wpe->grad : Tensor();
  if (dwte.defined() || dwpe.defined()) embedding_backward(dwte, dwpe, dx, ids_, T_);
  if (on_layer_grads_ready) on_layer_grads_ready(-1);
  xs_.clear();
  mode_ = ForwardMode::Eval;
}

std::vector<int64_t> Model::saved_activation_bytes() const {
  std::vector<int64_t> bytes;
  for (int l = 0; l < cfg_.n_layer; ++l) bytes.push_back(layer_saved_bytes(l));
  return bytes;
}

Tensor Model::logits(const TokenBatch& b) {
  TokenBatch nb = b;
  nb.targets = nullptr;
  forward(nb, 0.f);
  const int64_t N = int64_t(b.B) * b.T;
  Tensor out = Tensor::empty({N, int64_t(cfg_.vocab_size)}, DType::F32, opt_.device);
  gemm(out, lnf_, lm_head().value, false, true);
  xs_.clear();
  return out.to(Device::CPU);
}

}  // namespace qtrain
