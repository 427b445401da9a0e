// A frozen BitNet b1.58 base: the ternary weight stored in 2 bits
// (kernels/quant/ternary.h) and applied as the trained BitLinear applies it at
// lambda 1 (models/bitlinear_weight.h): y = W2A8(SubLN(x)) - 8-bit per-token
// activations, int32 dot products with the ternary codes (kernels/ternary.h:
// the SubLN and the 8-bit quantization in one pass, then on CUDA a dp4a GEMV
// for decode, a wgmma kernel or cuBLASLt's int8 GEMM otherwise). The input
// gradient (adapters on a BitNet backbone: --method bitnet-lora) is straight
// through the activation quantizer and back through the SubLN.
//
// Stored (qtrain export --format ternary): <m>.weight U8 codes
// [out, row_bytes], <m>.weight.ternary_scale F32 [1] and
// <m>.weight.ternary_subln F32 [1] (1 = SubLN before the product).
#pragma once
#include <memory>
#include <string>

#include "kernels/ternary.h"
#include "models/base_weight.h"
#include "models/subln.h"
#include "models/weight_source.h"

namespace qtrain {

class TernaryWeight : public BaseWeight {
 public:
  TernaryWeight(quant::PackedTernary p, bool subln);
  // The stored form of `name` in src, or null when src holds it as floats.
  static std::unique_ptr<TernaryWeight> from_source(const WeightSource& src, const std::string& name, int64_t out,
                                                    int64_t in);
  int64_t out_features() const override { return w_.rows; }
  int64_t in_features() const override { return w_.cols; }
  // y = W2A8(SubLN(x)): quantize_act_q8 (the SubLN fused in), then forward_q8.
  void forward(Tensor y, Tensor x) const override;
  // The product on rows quantized by quantize_act_q8(act, x, subln()).
  void forward_q8(Tensor y, const Q8Rows& act) const;
  const TernaryWeight* as_w2a8() const override { return this; }
  // scale * T times x, without the SubLN or the 8-bit activations
  void forward_weight(Tensor y, Tensor x) const override;
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  void backward_input_from(Tensor dx, Tensor dy, Tensor x, float beta) const override;
  Tensor dense_f32() const override;  // scale * T (the SubLN is not in it)
  size_t bytes() const override { return w_.bytes(); }
  bool subln() const { return subln_; }
  const TernaryTensor& packed() const { return w_; }  // host copy

 private:
  const TernaryTensor& on(Device d) const;
  TernaryTensor w_;
  bool subln_;
  SubLn norm_;  // the input gradient's way back through the SubLN
  mutable TernaryTensor dev_;  // the GPU copy, made on first CUDA use
};

}  // namespace qtrain
