// A Linear base weight in LowRA's mixed-precision layout (kernels/quant/lowra.h):
// each output channel at 1, 2 or 4 bits with its own Lloyd-Max level table,
// absmax per 64 weights (--method lowra; the per-channel widths and tables come
// from the whole-model plan in models/methods/lowra.cpp). It is a
// DequantWeight: CPU products dequantize a chunk of rows into an F32 scratch
// and run the BLAS gemm; on CUDA the packed form is uploaded once and each
// product dequantizes the matrix into a BF16 scratch (kernels/lowra_dequant.h)
// for cuBLASLt, but a decode step (up to 8 rows) reads the packed form
// directly. The model only ever holds the packed form.
#pragma once
#include "kernels/quant/lowra.h"
#include "models/quant_weight.h"

namespace qtrain {

class LowraWeight : public DequantWeight {
 public:
  // w_f32 [out, in] host; bits [out] (1, 2, 4); lut [out * 16], row r's levels in its first 2^bits[r] slots.
  LowraWeight(const Tensor& w_f32, const std::vector<uint8_t>& bits, const std::vector<float>& lut);
  // up to 8 BF16 rows on the GPU (decode): straight from the packed form (lowra_matvec)
  void forward(Tensor y, Tensor x) const override;
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  // codes + level tables + F32 absmax per 64 weights + row offsets
  size_t bytes() const override { return p_.bytes(); }
  const quant::LowraPacked& packed() const { return p_; }

 private:
  void upload() const;
  quant::LowraPacked p_;
  mutable Tensor dev_codes_, dev_offset_, dev_bits_, dev_lut_, dev_absmax_;  // the GPU copy, made on first CUDA use
};

}  // namespace qtrain
