// The base weight of a Linear layer, W [out, in], in whatever format it is
// stored: dense (F32 on the CPU, BF16 on CUDA) now; quantized formats (NF4,
// int8, GGUF blocks) implement the same three calls in their own files.
#pragma once
#include <memory>

#include "kernels/tensor.h"

namespace qtrain {

struct Quant4Tensor;  // kernels/quant_matmul.h
class TernaryWeight;  // models/ternary_weight.h

class BaseWeight {
 public:
  virtual ~BaseWeight() = default;
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
  // y[N,out] = x[N,in] @ W^T (overwrites y)
  virtual void forward(Tensor y, Tensor x) const = 0;
  // y = x W^T + bias[out]: forward, then add_bias; the dense weight adds it in its GEMM's epilogue.
  virtual void forward_bias(Tensor y, Tensor x, Tensor bias) const;
  // dx[N,in] = dy[N,out] @ W, overwritten (beta 0) or accumulated (beta 1)
  virtual void backward_input(Tensor dx, Tensor dy, float beta) const = 0;
  // W as a dense F32 host tensor [out, in] (export, merge, tests).
  virtual Tensor dense_f32() const = 0;
  // Bytes the weight occupies where it lives (memory reports).
  virtual size_t bytes() const = 0;

  // ---- bases that transform their input or weight inside the product (BitNet) ----
  // y = x W^T with W exactly as dense_f32() holds it: no transform of x inside
  // the product (SubLN, 8-bit activations, LLM.int8's outlier split). What an
  // adapter computing with the weight itself calls (DoRA's A W^T); by default forward.
  virtual void forward_weight(Tensor y, Tensor x) const { forward(y, x); }
  // dx from dy with the layer's input x at hand; by default backward_input.
  virtual void backward_input_from(Tensor dx, Tensor dy, Tensor x, float beta) const { backward_input(dx, dy, beta); }
  // A trainable base's weight gradient, accumulated: dW += dy^T x by default.
  virtual void accumulate_weight_grad(Tensor dw, Tensor dy, Tensor x) const;
  // The optimizer step about to run (quantization-aware warmup schedules).
  virtual void set_step(int64_t step) {}

  // ---- products that share their input (Linear::forward_shared) ----
  // The packed 4-bit weight when forward(y, x) is matmul_4bit with it (a decode-
  // sized x on the GPU), so that weights reading the same x run as one
  // matmul_4bit_shared; nullptr (the default) when forward does anything else.
  virtual const Quant4Tensor* as_4bit_gemv(const Tensor& x) const { return nullptr; }
  // The W2A8 base (BitNet) whose forward quantizes x (with its SubLN) and runs on
  // the int8 rows, so that weights reading the same x quantize it once; nullptr
  // (the default) for every other base.
  virtual const TernaryWeight* as_w2a8() const { return nullptr; }
};

// A plain dense matrix. For full fine-tuning `w` is a view of the trainable
// F32 master copy; otherwise it is a frozen copy in the compute dtype.
class DenseWeight : public BaseWeight {
 public:
  // compute: where a full fine-tune's BF16 copy of `w` appears (Param::compute,
  // once ParamSet::enable_compute_copy ran); the products read it when defined.
  explicit DenseWeight(Tensor w, const Tensor* compute = nullptr) : w_(std::move(w)), compute_(compute) {}
  int64_t out_features() const override { return w_.size(0); }
  int64_t in_features() const override { return w_.size(1); }
  void forward(Tensor y, Tensor x) const override;
  void forward_bias(Tensor y, Tensor x, Tensor bias) const override;
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  Tensor dense_f32() const override { return w_.to(Device::CPU, DType::F32); }
  size_t bytes() const override { return w_.nbytes(); }
  const Tensor& tensor() const { return w_; }

 private:
  const Tensor& operand() const { return compute_ && compute_->defined() ? *compute_ : w_; }
  Tensor w_;
  const Tensor* compute_;
};

}  // namespace qtrain
