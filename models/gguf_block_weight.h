// A Linear base weight kept in its GGUF block format (QLoRA directly on a
// GGUF base): the forward dequantizes one row of blocks at a time instead of
// holding a dense copy. This is the CPU reference; the CUDA kernels for it
// come with the quantized-weight work. Rows are read in HF order, so llama.cpp's
// Q/K permutation is undone on the fly.
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

  int64_t out_features() const override { return raw_.rows; }
  int64_t in_features() const override { return raw_.cols; }
  // y[N,out] = x[N,in] @ W^T   (CPU, F32)
  void forward(Tensor y, Tensor x) const override;
  // dx[N,in] = beta * dx + dy[N,out] @ W   (CPU, F32)
  void backward_input(Tensor dx, Tensor dy, float beta) const override;
  Tensor dense_f32() const override;
  size_t bytes() const override { return size_t(raw_.rows) * raw_.row_bytes; }
  GgmlType type() const { return raw_.type; }

 private:
  std::shared_ptr<const GgufFile> file_;  // owns the mapping raw_ points into
  GgufRawTensor raw_;
};

}  // namespace qtrain
