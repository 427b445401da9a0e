// Trainable parameters. All of a model's trainable tensors live in ONE flat
// F32 value buffer and ONE flat F32 gradient buffer, in registration order
// (layer order). That makes the fused AdamW one launch, and lets dist/ reduce
// contiguous buckets of the gradient buffer in reverse layer order.
#pragma once
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace qtrain {

struct Param {
  std::string name;     // PEFT/HF naming, e.g. "model.layers.0.self_attn.q_proj.lora_A.weight"
  Shape shape;
  bool decay = true;    // weight decay applies (false for biases and norm weights in full fine-tune)
  int layer = -1;       // transformer block index, -1 for embeddings/final norm/head
  int64_t offset = 0;   // element offset inside the flat buffers
  Tensor value;         // views into the flat buffers (set by ParamSet::allocate)
  Tensor grad;
  Tensor compute;       // BF16 copy of value (enable_compute_copy), else undefined
};

class ParamSet {
 public:
  // Declare before allocate(); returns the index of the parameter.
  size_t declare(const std::string& name, const Shape& shape, bool decay, int layer);
  // Allocates the flat buffers on `device` (F32), zeroed, and sets the views.
  void allocate(Device device);
  bool allocated() const { return values_.defined(); }

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& operator[](size_t i) { return params_[i]; }
  const Param* find(const std::string& name) const;
  int64_t numel() const { return numel_; }
  Tensor values() const { return values_; }
  Tensor grads() const { return grads_; }
  // A BF16 copy of every value on the GPU, for products that would round the F32
  // masters at each use (a full fine-tune's weights: forward and backward each
  // rounded every weight again). AdamW writes it with each update; anything else
  // that changes values after this must call sync_compute_copy(). No-op on the CPU.
  void enable_compute_copy();
  void sync_compute_copy();
  Tensor compute_values() const { return compute_; }
  void zero_grads() { grads_.zero_(); }

 private:
  std::vector<Param> params_;
  int64_t numel_ = 0;
  Tensor values_, grads_, compute_;
};

}  // namespace qtrain
