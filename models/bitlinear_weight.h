// BitNet b1.58's BitLinear (Ma et al. 2024) over a trainable F32 weight:
//   y = Q8(SubLN(x)) @ Q3(W)^T
// Q3: ternary {-1, 0, +1} x the per-tensor absmean; Q8: 8-bit per token
// (absmax); SubLN: an RMSNorm without weights on the input (BitNet's
// normalisation before activation quantization). Quantization-aware training
// with lambda-warmup: every transform is blended in as v + lambda (T(v) - v),
// lambda rising linearly from 0 to 1 over `warmup` steps (Model::set_step),
// so training starts at the pretrained model and ends fully quantized; the
// quantizers are straight-through in backward, the SubLN's blend is not.
// Embeddings, norms and lm_head are not Linears: they stay in high precision.
#pragma once
#include "models/base_weight.h"
#include "models/subln.h"

namespace qtrain {

class BitLinearWeight : public BaseWeight {
 public:
  BitLinearWeight(Tensor master, int64_t warmup, bool subln) : w_(std::move(master)), warmup_(warmup), subln_(subln) {}
  int64_t out_features() const override { return w_.size(0); }
  int64_t in_features() const override { return w_.size(1); }
  void forward(Tensor y, Tensor x) const override;
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  void backward_input_from(Tensor dx, Tensor dy, Tensor x, float beta) const override;
  void accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const override;
  Tensor dense_f32() const override { return w_.to(Device::CPU, DType::F32); }  // the latent weight
  size_t bytes() const override { return w_.nbytes(); }
  void set_step(int64_t step) override;
  float lambda() const { return lambda_; }

 private:
  Tensor quantized_weight(DType dt) const;          // W + lambda (Q3(W) - W)
  Tensor product_input(Tensor x) const;             // Q8 blend of the SubLN blend of x
  Tensor w_;
  int64_t warmup_;
  bool subln_;
  float lambda_ = 1.f;  // a model that never hears set_step acts fully trained
  SubLn subln_norm_;
};

}  // namespace qtrain
