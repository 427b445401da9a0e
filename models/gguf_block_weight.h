// A Linear base weight kept in its GGUF block format (LoRA directly on a GGUF
// base, --method gguf-lora). It is a DequantWeight: each product dequantizes
// the blocks (on the CPU a chunk of rows at a time into an F32 scratch, on the
// GPU the whole matrix into a BF16 scratch, from blocks uploaded once) and runs
// the dense gemm, as the 4-bit bases do; the model itself only ever holds the
// blocks. Rows are read in HF order, so llama.cpp's Q/K permutation is undone.
#pragma once
#include <memory>
#include <string>

#include "models/gguf_weights.h"
#include "models/quant_weight.h"

namespace qtrain {

class GgufBlockWeight : public DequantWeight {
 public:
  // `name` is the HF name of a 2-D weight in `src`; keeps the file mapped.
  GgufBlockWeight(const GgufWeightSource& src, const std::string& name);
  // From a WeightSource's PackedTensor of format "gguf".
  explicit GgufBlockWeight(const PackedTensor& packed);

  // A few rows of x on the GPU (decode): one pass over the blocks (matmul_gguf), no BF16 copy of W.
  void forward(Tensor y, Tensor x) const override;
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  size_t bytes() const override { return size_t(raw_.rows) * raw_.row_bytes; }
  GgmlType type() const { return raw_.type; }

 private:
  const Tensor& device_blocks() const;
  std::shared_ptr<const GgufFile> file_;  // owns the mapping raw_ points into
  GgufRawTensor raw_;
  mutable Tensor dev_blocks_;  // U8, rows in HF order, made on first CUDA use
};

}  // namespace qtrain
