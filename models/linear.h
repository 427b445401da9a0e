// Linear = a base weight (dense or quantized) + an optional bias + an
// optional adapter. For full fine-tuning the weight and bias are trainable
// parameters; otherwise they are frozen and never get gradients.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/adapters/adapter.h"
#include "models/base_weight.h"
#include "models/params.h"
#include "kernels/seq_pos.h"

namespace qtrain {

class Linear {
 public:
  Linear(std::string name, int64_t in, int64_t out, bool has_bias, int layer)
      : name_(std::move(name)), in_(in), out_(out), has_bias_(has_bias), layer_(layer) {}

  const std::string& name() const { return name_; }  // HF module path
  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  bool has_bias() const { return has_bias_; }
  int layer() const { return layer_; }

  // Full fine-tune: weight/bias become parameters named "<name>.weight"/".bias".
  void declare_trainable(ParamSet& ps);
  void set_adapter(std::unique_ptr<Adapter> a) { adapter_ = std::move(a); }
  Adapter* adapter() const { return adapter_.get(); }
  // After allocate: bind trainable views (full FT) or keep the frozen tensors.
  // `wrap` holds a trainable weight's F32 master copy as the method's base
  // (BitNet's BitLinear); unset = a plain dense weight.
  void bind(ParamSet& ps, const std::function<std::unique_ptr<BaseWeight>(Tensor master)>& wrap = {});
  void set_frozen(std::unique_ptr<BaseWeight> w, Tensor bias);
  bool trainable() const { return w_param_ != SIZE_MAX; }
  const BaseWeight& base() const { return *weight_; }
  BaseWeight& base() { return *weight_; }
  Tensor bias() const { return bias_; }
  // The weight's [out,in] host copy for loading a trainable weight.
  Param* weight_param(ParamSet& ps) { return trainable() ? &ps[w_param_] : nullptr; }
  Param* bias_param(ParamSet& ps) { return trainable() && has_bias_ ? &ps[b_param_] : nullptr; }

  // y[N,out] = x W^T + b (+ adapter)
  void forward(Tensor y, Tensor x, bool train, uint64_t dropout_seed);
  // forward of each layer in `ls` on the same x (LLaMA's q/k/v, gate/up; one
  // layer works too): the same results, with the base products as one
  // matmul_4bit_shared when every base is a 4-bit GEMV at this x, and outside
  // training the adapters as one lora_decode_shared when each is a plain LoRA
  // whose factors that op takes (decode: BF16 views of them, a few rows);
  // otherwise layer by layer. An adapter that rescales x (IA3) sends the whole
  // set through forward one by one.
  static void forward_shared(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, Tensor x, bool train,
                             const std::vector<uint64_t>& dropout_seeds);
  // The set's input x made by an op right before it (a LLaMA layer's residual add and RMSNorm in front
  // of q/k/v and gate/up), which a 4-bit decode GEMV set can run inside its own launch. `alone` runs
  // the op by itself; `with_products` runs it with the base products ys[i] = x W_i^T
  // (add_rmsnorm_matmul_4bit_shared). Each returns what forward_shared hands back (the norm: the
  // tensor holding the residual sum).
  struct InputOp {
    Tensor x;
    std::function<Tensor()> alone;
    std::function<Tensor(const std::vector<Tensor>& ys, const std::vector<const Quant4Tensor*>& ws)> with_products;
    // s = silu(x gate^T) * (x up^T) with the op (add_rmsnorm_matmul_4bit_swiglu); unset: no such form.
    std::function<Tensor(Tensor s, const Quant4Tensor& gate, const Quant4Tensor& up)> with_swiglu;
    // q, k, v = x W^T with RoPE and the cache append after them (add_rmsnorm_matmul_4bit_rope_kv); unset: none.
    std::function<Tensor(Tensor q, Tensor k, Tensor v, const Quant4Tensor& wq, const Quant4Tensor& wk,
                         const Quant4Tensor& wv, Tensor kc, Tensor vc, float theta, SeqPos pos)>
        with_rope_kv;
  };
  // h = rmsnorm(x + r) * w into h [N, in] and rstd [N] (r undefined: rmsnorm(x) * w); hands back the
  // tensor holding x + r: x, added in place, or a new one (add_rmsnorm_matmul_4bit_shared).
  static InputOp rmsnorm_input(Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps);
  // forward_shared of op.x, made first: by the GEMV's launch where every base is a 4-bit GEMV at it,
  // otherwise by op.alone.
  static Tensor forward_shared(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, const InputOp& op,
                               bool train, const std::vector<uint64_t>& dropout_seeds);
  // A gated MLP's front: ys = {gate(x), up(x)} by forward_shared, then s = silu(ys[0]) * ys[1]
  // (swiglu_forward). Outside training, where nothing reads the products afterwards (keep_products
  // false), neither layer has an adapter or a bias and both bases are 4-bit GEMVs at x, it is one op
  // that keeps only s (op.with_swiglu: the SwiGLU in the GEMV's epilogue on CUDA) and ys are not
  // written. Returns what forward_shared returns.
  static Tensor forward_swiglu(Linear& gate, Linear& up, Tensor s, const std::vector<Tensor>& ys, const InputOp& op,
                               bool train, bool keep_products, const std::vector<uint64_t>& dropout_seeds);
  // Attention's front at decode: ys = {q, k, v} ([B, T, H, D]) by forward_shared of the three layers
  // in ls. Outside training, where no layer has an adapter or a bias and the bases are 4-bit GEMVs at x,
  // it is one op that also rotates q and k and appends k and v to the cache kc, vc at pos
  // (op.with_rope_kv: in the GEMV's epilogue on CUDA), and *appended says so; otherwise the caller
  // still has RoPE and the append to do. Returns what forward_shared returns.
  static Tensor forward_rope_kv(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, const InputOp& op,
                                bool train, const std::vector<uint64_t>& dropout_seeds, Tensor kc, Tensor vc,
                                float theta, SeqPos pos, bool* appended);
  // forward's saved state without y (and without the base product): for a
  // gradient-checkpoint recompute of a projection whose output is not needed.
  void save_for_backward(Tensor x, bool train, uint64_t dropout_seed);
  // dx[N,in] = dy W (+ adapter), overwritten or (accumulate) added to;
  // parameter grads are always accumulated.
  void backward(Tensor dx, Tensor dy, Tensor x, bool accumulate = false);

 private:
  // Whether the bias goes in with the base product (forward_bias: the dense GEMM's epilogue),
  // that is, before the adapter.
  bool bias_with_base() const { return bias_.defined() && (!adapter_ || adapter_->sees_bias()); }
  // The bias as the base product's epilogue reads it: its BF16 compute copy when there is one.
  const Tensor& epilogue_bias() const { return bias_compute_ && bias_compute_->defined() ? *bias_compute_ : bias_; }
  // forward past the base product: the bias unless it went in with it, and the adapter, in the
  // order the adapter wants.
  void finish_forward(Tensor y2, Tensor x2, bool train, uint64_t dropout_seed, bool bias_done);
  // Both forward_shared: x made by `op` first where it is set (its result returned).
  static Tensor forward_shared_from(const std::vector<Linear*>& ls, const std::vector<Tensor>& ys, Tensor x,
                                    const InputOp* op, bool train, const std::vector<uint64_t>& dropout_seeds);
  std::string name_;
  int64_t in_, out_;
  bool has_bias_;
  int layer_;
  std::unique_ptr<BaseWeight> weight_;
  Tensor bias_;
  const Tensor* bias_compute_ = nullptr;  // Param::compute of a trainable bias
  size_t w_param_ = SIZE_MAX, b_param_ = SIZE_MAX;
  Tensor dw_, db_;
  std::unique_ptr<Adapter> adapter_;
};

}  // namespace qtrain
