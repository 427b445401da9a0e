// A Linear base weight kept in its GGUF block format (LoRA directly on a GGUF
// base, --method gguf-lora): on the CPU the forward dequantizes one row of
// blocks at a time instead of holding a dense copy; on the GPU the blocks are
// uploaded once (in HF row order) and each product dequantizes them into a
// BF16 scratch for the dense gemm (kernels/gguf_dequant.h), as the 4-bit bases
// do. Rows are read in HF order, so llama.cpp's Q/K permutation is undone.
#pragma once
#include <memory>
#include <string>

#include "models/base_weight.h"
#include "models/gguf_weights.h"

namespace qtrain {

class GgufBlockWeight : public BaseWeight {
 public:
  // `name` is the HF name of a 2-D weight in `src`; keeps the file mapped.
  GgufBlockWeight(const GgufWeightSource& src, const std::string& name);
  // From a WeightSource's PackedTensor of format "gguf".
  explicit GgufBlockWeight(const PackedTensor& packed);

  int64_t out_features() const override { return raw_.rows; }
  int64_t in_features() const override { return raw_.cols; }
  // y[N,out] = x[N,in] @ W^T
  void forward(Tensor y, Tensor x) const override;
  // dx[N,in] = beta * dx + dy[N,out] @ W
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  Tensor dense_f32() const override;
  size_t bytes() const override { return size_t(raw_.rows) * raw_.row_bytes; }
  GgmlType type() const { return raw_.type; }

 private:
  Tensor dense_on_device() const;  // a BF16 scratch holding W, for one product
  std::shared_ptr<const GgufFile> file_;  // owns the mapping raw_ points into
  GgufRawTensor raw_;
  mutable Tensor dev_blocks_;  // U8, rows in HF order, made on first CUDA use
};

}  // namespace qtrain
