// A GGUF file presented as a WeightSource under HF LLaMA names and layouts
// (see models/gguf_llama_names.h), plus raw access to the blocks for a base
// kept in its GGUF format (the forward then dequantizes row by row).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/gguf_file.h"
#include "models/weight_source.h"

namespace qtrain {

// One tensor in its stored ggml blocks, rows in HF order.
struct GgufRawTensor {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0, cols = 0;   // HF [out, in]; a 1-D tensor is one row
  size_t row_bytes = 0;
  int permuted_heads = 0;       // > 0: HF row r is stored at rope_permuted_row(r)
  const uint8_t* data = nullptr;
  // Stored bytes of HF row r (undoing llama.cpp's Q/K permutation).
  const uint8_t* row(int64_t r) const;
};

// `info`'s stored blocks with rows in HF order: permuted_heads > 0 undoes
// llama.cpp's Q/K row permutation (rope_permuted_heads), on a 2-D tensor's rows
// or a 1-D tensor's elements.
GgufRawTensor gguf_raw_tensor(const GgufFile& file, const GgufTensorInfo& info, int permuted_heads);
// The same tensor in F32 on the host, HF shape (ggml's ne reversed).
Tensor gguf_tensor_f32(const GgufFile& file, const GgufTensorInfo& info, int permuted_heads);

// PackedTensor::impl of format "gguf": the blocks and the mapping they live in.
struct GgufPacked {
  std::shared_ptr<const GgufFile> file;
  GgufRawTensor raw;
};

class GgufWeightSource : public WeightSource {
 public:
  // Maps every LLaMA tensor of `file`; n_head/n_kv_head drive the Q/K
  // un-permutation. Unknown tensor names are an error naming them.
  GgufWeightSource(std::shared_ptr<const GgufFile> file, int n_head, int n_kv_head);

  const std::string& path() const override { return file_->path(); }
  std::vector<std::string> names() const override;
  bool has(const std::string& name) const override { return entries_.count(name) != 0; }
  Shape shape(const std::string& name) const override;
  Tensor load_f32(const std::string& name) const override;
  // Block-quantized 2-D tensors as "gguf" (F32/BF16 ones load as floats).
  PackedTensor load_packed(const std::string& name) const override;

  GgufRawTensor raw(const std::string& name) const;
  const GgufFile& file() const { return *file_; }
  std::shared_ptr<const GgufFile> shared_file() const { return file_; }

 private:
  struct Entry {
    const GgufTensorInfo* info;
    Shape shape;  // HF order (ggml ne reversed)
    int permuted_heads;
  };
  const Entry& entry(const std::string& name) const;
  std::shared_ptr<const GgufFile> file_;
  std::map<std::string, Entry> entries_;
};

}  // namespace qtrain
