// A Linear base weight quantized with HQQ (kernels/quant/hqq.h), 4 or 2 bits,
// groups of 64 along the input features (--method hqq-lora). It is a
// DequantWeight: CPU products dequantize a chunk of rows into an F32 scratch
// and run the BLAS gemm; on CUDA the packed codes, scale and zero are uploaded
// once and each product dequantizes the matrix into a BF16 scratch
// (kernels/hqq_dequant.h) for cuBLASLt. The model only ever holds the codes.
#pragma once
#include "kernels/quant/hqq.h"
#include "models/quant_weight.h"

namespace qtrain {

class HqqWeight : public DequantWeight {
 public:
  HqqWeight(const Tensor& w_f32, int bits);
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  // packed codes + F32 scale and zero per 64 weights: 0.625 B/weight (4-bit), 0.375 (2-bit)
  size_t bytes() const override { return p_.bytes(); }
  const quant::HqqPacked& packed() const { return p_; }

 private:
  quant::HqqPacked p_;
  mutable Tensor dev_codes_, dev_scale_, dev_zero_;  // the GPU copy, made on first CUDA use
};

}  // namespace qtrain
