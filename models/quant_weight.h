// Quantized frozen base weights (QLoRA & co.): NF4 / FP4 in bitsandbytes'
// blockwise layout (kernels/quant/nf4.h) and vector-wise int8
// (kernels/quant/int8.h). The packed weight stays packed; forward and
// backward_input dequantize a chunk of output rows at a time into an F32
// scratch and call the dense gemm, so the dense matrix never exists whole
// for large weights (chunks of <= kChunkElems elements).
//
// CUDA: first version only. The packed weight is kept on the host and every
// call dequantizes the whole matrix on the host, uploads it as BF16 and runs
// cuBLASLt. A device dequant kernel (kernels/cuda/quant_dequant.cu) and then
// a fused dequant-GEMM are the next steps.
#pragma once
#include "kernels/quant/int8.h"
#include "kernels/quant/nf4.h"
#include "models/base_weight.h"

namespace qtrain {

// Shared chunked dense-on-the-fly product; subclasses only dequantize rows.
class DequantWeight : public BaseWeight {
 public:
  static constexpr int64_t kChunkElems = int64_t(1) << 22;
  DequantWeight(int64_t out, int64_t in) : out_(out), in_(in) {}
  int64_t out_features() const override { return out_; }
  int64_t in_features() const override { return in_; }
  void forward(Tensor y, Tensor x) const override;
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  Tensor dense_f32() const override;
  // rows [r0, r1) of W, dequantized, into out ((r1 - r0) * in floats)
  virtual void dequantize_rows(int64_t r0, int64_t r1, float* out) const = 0;

 private:
  int64_t chunk_rows() const;
  int64_t out_, in_;
};

// NF4 or FP4, with or without double quantization (bnb compress_statistics).
class Block4Weight : public DequantWeight {
 public:
  Block4Weight(const Tensor& w_f32, quant::Code4 code, bool double_quant);
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  size_t bytes() const override { return p_.bytes(); }
  const quant::Packed4& packed() const { return p_; }

 private:
  quant::Packed4 p_;
  std::vector<float> absmax_;  // decoded once: 4 bytes per 64 weights
};

class Nf4Weight : public Block4Weight {
 public:
  Nf4Weight(const Tensor& w_f32, bool double_quant) : Block4Weight(w_f32, quant::Code4::NF4, double_quant) {}
};

class Fp4Weight : public Block4Weight {
 public:
  Fp4Weight(const Tensor& w_f32, bool double_quant) : Block4Weight(w_f32, quant::Code4::FP4, double_quant) {}
};

// CPU forward: LLM.int8 (int8.h); backward_input and CUDA: dequantized gemm.
class Int8Weight : public DequantWeight {
 public:
  explicit Int8Weight(const Tensor& w_f32, float threshold = 6.f);
  void forward(Tensor y, Tensor x) const override;
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  size_t bytes() const override { return p_.bytes(); }

 private:
  quant::Int8Rows p_;
  float threshold_;
};

// The base weight a quantized --method builds for a frozen Linear, or null
// when the method does not quantize (full, lora).
std::unique_ptr<BaseWeight> make_quantized_weight(const std::string& method, const Tensor& w_f32);
bool method_quantizes(const std::string& method);

}  // namespace qtrain
