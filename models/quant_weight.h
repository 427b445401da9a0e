// Quantized frozen base weights (QLoRA & co.): NF4 / FP4 in bitsandbytes'
// blockwise layout (kernels/quant/nf4.h) and vector-wise int8
// (kernels/quant/int8.h). The packed weight stays packed; forward and
// backward_input dequantize a chunk of output rows at a time into an F32
// scratch and call the dense gemm, so the dense matrix never exists whole
// for large weights (chunks of <= kChunkElems elements).
//
// CUDA: the packed weight is uploaded once, on first use (packed bytes and
// the - double-quantized - absmax: ~0.52 bytes per weight for NF4+DQ). Each
// product dequantizes the matrix into a BF16 scratch on the GPU
// (kernels/quant_matmul.h) and runs cuBLASLt, as bitsandbytes does; up to 16
// input rows (decode) use the one-pass tensor-core 4-bit product instead. The scratch
// comes from the caching allocator and is one matrix at a time: the dense
// model never exists on the GPU.
#pragma once
#include <cstring>
#include <vector>

#include "kernels/quant/int8.h"
#include "kernels/quant/nf4.h"
#include "kernels/quant_matmul.h"
#include "models/base_weight.h"

namespace qtrain {

// A host vector as a 1-D GPU tensor of dtype t (a packed base's one upload).
template <class T>
Tensor upload_1d(const std::vector<T>& v, DType t) {
  QT_CHECK(sizeof(T) == dtype_size(t), "upload_1d: element size does not match the dtype");
  Tensor host = Tensor::empty({int64_t(v.size())}, t);
  std::memcpy(host.raw(), v.data(), v.size() * sizeof(T));
  return host.to(Device::CUDA);
}

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
  // W into a BF16 [out, in] tensor on the GPU, from the device-resident packed form.
  virtual void dequantize_on_device(Tensor out) const = 0;

 protected:
  Tensor dense_on_device() const;  // a BF16 scratch holding W, for one product

 private:
  int64_t chunk_rows() const;
  int64_t out_, in_;
};

// NF4 or FP4, with or without double quantization (bnb compress_statistics).
class Block4Weight : public DequantWeight {
 public:
  Block4Weight(const Tensor& w_f32, quant::Code4 code, bool double_quant);
  void forward(Tensor y, Tensor x) const override;
  const Quant4Tensor* as_4bit_gemv(const Tensor& x) const override;
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  size_t bytes() const override { return p_.bytes(); }
  const quant::Packed4& packed() const { return p_; }

 private:
  const Quant4Tensor& on_device() const;
  quant::Packed4 p_;
  std::vector<float> absmax_;  // decoded once: 4 bytes per 64 weights
  mutable Quant4Tensor dev_;   // the GPU copy, made on first CUDA use
};

class Nf4Weight : public Block4Weight {
 public:
  Nf4Weight(const Tensor& w_f32, bool double_quant) : Block4Weight(w_f32, quant::Code4::NF4, double_quant) {}
};

class Fp4Weight : public Block4Weight {
 public:
  Fp4Weight(const Tensor& w_f32, bool double_quant) : Block4Weight(w_f32, quant::Code4::FP4, double_quant) {}
};

// Forward: LLM.int8 (int8_matmul: int8 x int8 products with the outlier
// columns over `threshold` in F32; threshold 0 = none), on the CPU and on CUDA;
// backward_input: the dequantized weight in a dense gemm, as bitsandbytes does.
class Int8Weight : public DequantWeight {
 public:
  explicit Int8Weight(const Tensor& w_f32, float threshold = 6.f);
  void forward(Tensor y, Tensor x) const override;
  // the dequantized weight, not LLM.int8's quantized product
  void forward_weight(Tensor y, Tensor x) const override { DequantWeight::forward(y, x); }
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  size_t bytes() const override { return p_.bytes(); }

 private:
  const Int8Tensor& on_device() const;
  quant::Int8Rows p_;
  float threshold_;
  mutable Int8Tensor dev_;  // the GPU copy, made on first CUDA use
};

}  // namespace qtrain
