// A causal LM with an explicit forward and backward (the llm.c way): each
// layer's backward is a few kernel calls, activations are kept per layer (or
// recomputed with gradient checkpointing), and a callback fires as soon as a
// layer's parameter gradients are final so dist/ can start reducing them.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/seq_pos.h"
#include "models/adapters/adapter_type.h"
#include "models/adapters/lora.h"
#include "models/linear.h"
#include "models/method.h"
#include "models/model_config.h"
#include "models/params.h"
#include "models/weight_source.h"

namespace qtrain {

class HostParking;  // kernels/device.h

// What layer l's first forward keeps for its backward (ModelOptions::layer_keep).
enum class LayerKeep {
  All,          // every activation backward reads
  GemmOutputs,  // all but the cheap pointwise ones (norm outputs, SwiGLU/GELU), recomputed in backward
  None,         // nothing: the whole layer is recomputed right before its backward (gradient checkpointing)
};

struct ModelOptions {
  Device device = Device::CPU;
  std::string method = "lora";  // a registered method (models/method.h)
  std::string adapter_type;     // a registered adapter type; "" = the method's (models/adapters/adapter_type.h)
  LoraOptions lora;             // LoRA and DoRA
  // IA3: the modules scaled on their input (peft's feedforward_modules); unset = peft's per-architecture default.
  std::optional<std::vector<std::string>> ia3_feedforward;
  std::vector<std::string> targets{"all-linear"};  // PEFT-style module suffixes, or "all-linear"
  uint64_t seed = 0;
  bool grad_checkpoint = false;  // recompute every layer in backward (overrides the two counts below)
  // The activation plan (trainer/memory_plan.h picks it for --memory-budget):
  // the first `recompute_layers` layers are recomputed whole, the next
  // `pointwise_layers` keep only their GEMM outputs, the rest keep everything.
  // The first layers are the ones recomputed because backward reaches them
  // last, when every kept layer above has been freed.
  int recompute_layers = 0;
  int pointwise_layers = 0;
  // On the GPU, the input of each layer recomputed in backward is parked in pinned host memory from
  // its forward to its backward (offloaded checkpoints), so the GPU holds a few of them, not all.
  bool offload_checkpoints = false;
  LayerKeep layer_keep(int l) const {
    if (grad_checkpoint || l < recompute_layers) return LayerKeep::None;
    return l < recompute_layers + pointwise_layers ? LayerKeep::GemmOutputs : LayerKeep::All;
  }
  // Layers of n_layer recomputed whole in backward (grad_checkpoint: all of them).
  int recomputed_layers(int n_layer) const { return grad_checkpoint ? n_layer : std::min(recompute_layers, n_layer); }
  // Whether a training forward parks layer l's input in host memory (offload_checkpoints, on the GPU).
  bool parks(int l) const { return offload_checkpoints && device == Device::CUDA && layer_keep(l) == LayerKeep::None; }
  float int8_threshold = 6.f;  // int8-lora: LLM.int8 outlier threshold (0 = no outlier columns)
  int64_t bitnet_warmup = 0;   // bitnet: steps over which quantization blends in (0 = from the first step)
  bool bitnet_subln = true;    // bitnet: an RMSNorm on each BitLinear's input (SubLN)
  int loftq_iters = -1;        // LoftQ rounds for a quantized base + LoRA (models/loftq.h); 0 = off, -1 = the method's default
  int hqq_bits = 4;  // hqq-lora: 4 or 2
  double lowra_bits = 2.0;  // lowra: average code bits per base weight, 1.5 to 4
};

// One micro-batch of token ids on the host (data/ Batch, without depending on data/).
struct TokenBatch {
  int B = 0, T = 0;
  const int32_t* inputs = nullptr;   // [B*T]
  const int32_t* targets = nullptr;  // [B*T], -100 = not predicted
};

// Keys and values of every layer for the tokens decoded so far (generation).
// All rows hold the same number of tokens (`len`); positions run 0..len-1.
// Lowering `len` rolls the cache back (the rows past it are overwritten by the
// next decode): a chat turn reuses the cached prefix it shares with the last.
struct DecodeGraph;  // models/decode_graph.cpp
struct KvCache {
  int B = 0, capacity = 0, len = 0;
  std::vector<Tensor> k, v;  // per layer [B, capacity, Hkv, Dh], the model's activation dtype and device
  // The one-token step captured as a CUDA graph over this cache (made on first use).
  std::shared_ptr<DecodeGraph> graph;
  // BF16 copy of the trainable values that one-token GPU steps read the
  // adapters' decode factors from (Adapter::decode_factors); made at the
  // first such step (generation does not train).
  Tensor factors;
};

// What a forward pass is for. Train keeps (or checkpoints) activations for
// backward; Eval keeps nothing; Recompute is gradient checkpointing rebuilding
// one layer's activations right before its backward; Decode runs new tokens at
// positions after a KV cache and appends their keys and values to it.
enum class ForwardMode { Train, Eval, Recompute, Decode };

// What a model will hold, read from its declaration alone (nothing is
// allocated or loaded): the GPU memory estimate (trainer/memory_plan.h).
struct ModelFootprint {
  int64_t trainable = 0;       // trainable parameters: F32 value, gradient and two AdamW moments each
  int64_t frozen_slots = 0;    // frozen embeddings and norms, held in the activation dtype
  int64_t frozen_linear = 0;   // weights of frozen Linears, held in the method's base format
  int64_t trained_linear = 0;  // weights of Linears that train (full fine-tune, BitNet)
  int64_t largest_linear = 0;  // out * in of the largest Linear (a dequantized copy of it is a transient)
  int adapted = 0;             // Linears with an adapter
  // What every adapter of the model saves for backward, per token (Adapter::saved_columns).
  std::vector<int64_t> adapter_cols;
  int64_t adapter_bytes = 0;
  // One layer's tensors, each as its columns per token (Model::LayerColumns).
  std::vector<int64_t> kept_cols, kept_f32_cols, pointwise_cols, backward_cols;
};

struct LossSum {
  double sum = 0;     // sum of token losses (nats)
  int64_t count = 0;  // predicted tokens
};

// A tensor that is either frozen (grad undefined) or a trainable parameter.
struct WeightSlot {
  std::string name;  // HF parameter name
  Shape shape;
  bool decay = false;
  size_t param = SIZE_MAX;
  Tensor value, grad;
};

class Model {
 public:
  static std::unique_ptr<Model> create(const ModelConfig& cfg, const WeightSource& src, const ModelOptions& opt);
  // The same model declared but not built: what create() would allocate.
  static ModelFootprint footprint(const ModelConfig& cfg, const ModelOptions& opt);
  virtual ~Model() = default;

  const ModelConfig& config() const { return cfg_; }
  const ModelOptions& options() const { return opt_; }
  const Method& method() const { return *method_; }
  // What a targeted Linear gets; null for a full fine-tune.
  const AdapterType* adapter_type() const { return adapter_type_; }
  ParamSet& params() { return params_; }
  const std::vector<Linear*>& linears() const { return linears_; }
  // The --target entries that match no Linear module of this model (a typo, a stray space).
  std::vector<std::string> unmatched_targets() const;
  // Each Linear's path after its layer index, once ("self_attn.q_proj", "mlp.c_proj"): what --target can name.
  std::vector<std::string> linear_kinds() const;
  DType act_dtype() const { return act_dtype_; }
  int64_t total_params() const { return total_params_; }
  int64_t trainable_params() const;

  // Runs the forward pass and the loss. With grad_scale > 0 it also prepares
  // backward(), whose gradients are those of grad_scale * (sum of losses).
  LossSum forward(const TokenBatch& b, float grad_scale);
  void backward();
  // Bytes each layer holds for backward now: after a training forward, 0 for
  // the layers the plan recomputes (tests; the estimate's columns follow it).
  std::vector<int64_t> saved_activation_bytes() const;
  // Logits [B*T, V] as an F32 host tensor (tests and small evals).
  Tensor logits(const TokenBatch& b);

  // Incremental decoding. new_kv_cache makes an empty cache for B rows of at
  // most `capacity` tokens. decode runs ids [B, T_new] (row-major) at positions
  // cache.len .. cache.len + T_new - 1 against everything already cached,
  // appends their keys/values, and returns the last position's logits of each
  // row as an F32 host tensor [B, V]. A prompt is one call with T_new = its
  // length (prefill); each generated token is one call with T_new = 1.
  KvCache new_kv_cache(int B, int capacity) const;
  Tensor decode(const int32_t* ids, int B, int T_new, KvCache& cache);
  // On the GPU a one-token step (T_new = 1 after a prompt) is captured once as
  // a CUDA graph and replayed at each later position (models/decode_graph.cpp):
  // the same kernels and results, without the host issuing hundreds of launches
  // per token. Off runs every step eagerly (tests compare the two).
  void set_decode_graphs(bool on) { decode_graphs_ = on; }
  // How the last one-token GPU step ran: "graph", "eager", or why graphs are off.
  const std::string& decode_graph_status() const { return decode_graph_status_; }
  // The adapter factors a one-token GPU step reads as BF16 views (Adapter::decode_factors), in layer order.
  std::vector<Param*> decode_factors() const;

  // Every base tensor under its HF name and in HF layout (GPT-2's Conv1D
  // weights back to [in, out]) as F32 host tensors; with merge_adapters the
  // adapters are folded into their base weights (W + s*B*A).
  std::vector<std::pair<std::string, Tensor>> hf_state_dict(bool merge_adapters) const;

  // The optimizer step about to run, for bases with a schedule (BitNet's
  // quantization warmup); a model that never hears one acts fully trained.
  void set_step(int64_t step);

  // Dropout draws depend on this counter (one per forward); checkpoints save it.
  uint64_t rng_counter() const { return step_counter_; }
  void set_rng_counter(uint64_t c) { step_counter_ = c; }

  // Called during backward() with a layer index as soon as that layer's
  // parameter gradients are complete (layers descend; -1 = embeddings last).
  std::function<void(int layer)> on_layer_grads_ready;

 protected:
  Model(const ModelConfig& cfg, const ModelOptions& opt);
  // Subclasses declare their modules in the constructor with these helpers,
  // then create() allocates, binds and loads.
  WeightSlot& slot(const std::string& name, const Shape& shape, int layer, bool decay = false);
  Linear& linear(const std::string& module, int64_t in, int64_t out, bool bias, int layer);
  // Loaders: how the checkpoint stores a Linear's weight ([out,in], or GPT-2's [in,out]).
  virtual bool transposed_weights() const { return false; }
  virtual std::string source_name(const std::string& hf_name) const { return hf_name; }

  // Architecture hooks. Activations of layer l live in whatever the subclass
  // keeps, as `keep` says (LayerKeep::None outside training and when the
  // layer will be recomputed). During that recompute (mode_ == Recompute,
  // keep All) x_out is undefined: the layer's last projection only feeds
  // x_out, which the first forward kept, so it saves that projection's
  // backward state and skips its product (Linear::save_for_backward).
  virtual void layer_forward(int l, Tensor x_in, Tensor x_out, bool train, LayerKeep keep) = 0;
  // dx: in = grad wrt the layer output, out = grad wrt its input (in place).
  // Pointwise activations a GemmOutputs layer dropped are recomputed here.
  virtual void layer_backward(int l, Tensor x_in, Tensor dx) = 0;
  virtual int64_t layer_saved_bytes(int l) const = 0;  // what layer l holds for backward now
  virtual void final_norm_forward(Tensor out, Tensor x) = 0;
  virtual void final_norm_backward(Tensor dx, Tensor dout, Tensor x) = 0;
  virtual WeightSlot& token_embedding() = 0;
  virtual WeightSlot* position_embedding() { return nullptr; }
  virtual WeightSlot& lm_head() = 0;
  // One layer's tensors, each as its columns per token (its [N, cols] shape,
  // N = batch x seq): those layer_forward keeps for backward in the activation
  // dtype, and in F32 (norm statistics, attention's log-sum-exp); those of the
  // kept ones a GemmOutputs layer drops; and those layer_backward allocates.
  // Tensor by tensor, because the GPU allocator rounds each one (the memory
  // estimate, trainer/memory_plan.h, follows them).
  struct LayerColumns {
    std::vector<int64_t> kept, kept_f32, pointwise, backward;
  };
  virtual LayerColumns layer_columns() const = 0;
  // Learned positions bound the sequence length (GPT-2's n_positions); 0 = no hard limit (RoPE).
  virtual int position_limit() const { return 0; }

  uint64_t dropout_seed(int l, int k) const;
  // Causal self-attention of layer l on q [B,T,Hq,D], k, v [B,T,Hkv,D], into
  // out; lse is saved for backward. rope_theta > 0 rotates q and k in place
  // first (RoPE at positions pos_..). Decoding appends k and v to the cache at
  // positions pos_.. (in the same launch as RoPE) and lets q attend to
  // everything cached. appended: q and k are rotated and k, v in the cache already (Linear::forward_rope_kv).
  void attend(int l, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, float rope_theta = 0.f, bool appended = false);
  // Layer l's key and value cache while decoding (undefined tensors otherwise).
  std::pair<Tensor, Tensor> decode_cache(int l) const;
  ForwardMode mode_ = ForwardMode::Eval;
  int B_ = 0, T_ = 0;
  SeqPos pos_;                 // position of the first token of this pass (decoding)
  KvCache* cache_ = nullptr;   // set while decoding
  // A one-token decode step may leave a layer's closing residual add to the
  // norm that reads its output next (the next layer's, or the final one), as a
  // fused add + norm: out = down(...) is left without + x2, and this holds x2.
  // Only decode_pass sets it (no activations kept, so nothing else reads the
  // unfinished output), and it is cleared before and after every pass.
  Tensor pending_residual_;
  ModelConfig cfg_;
  ModelOptions opt_;
  const Method* method_;
  const AdapterType* adapter_type_ = nullptr;
  DType act_dtype_;

 private:
  void finish_build(const WeightSource& src);
  // One decode pass of ids_dev [B*T_new] (on the model's device) at `pos`,
  // writing the last position's logits of each row into logits [B, V].
  void decode_pass(Tensor ids_dev, int B, int T_new, KvCache& cache, SeqPos pos, Tensor logits);
  Tensor decode_graphed(const int32_t* ids, int B, KvCache& cache);
  bool decode_graphs_ = true;
  std::string decode_graph_status_ = "eager";
  bool targeted(const std::string& module) const;
  void release_adapter_state(int layer);

  ParamSet params_;
  std::vector<std::unique_ptr<WeightSlot>> slots_;
  std::vector<std::unique_ptr<Linear>> linear_storage_;
  std::vector<Linear*> linears_;
  int64_t total_params_ = 0;
  uint64_t step_counter_ = 0;
  // Saved across forward/backward.
  std::vector<Tensor> xs_;  // residual stream at each layer input, and the final output
  // Offloaded checkpoints: parked_[l] says xs_[l] sits in parking_'s slot l between forward and backward.
  std::shared_ptr<HostParking> parking_;
  std::vector<bool> parked_;
  Tensor ids_, targets_, lnf_, dlnf_;
};

}  // namespace qtrain
