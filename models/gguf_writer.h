// Writes GGUF v3 files: typed metadata in insertion order, then tensor infos,
// then the data, each tensor aligned to general.alignment (32). Tensors are
// given as F32 host tensors in HF layout ([out, in]) and stored as F32, F16,
// BF16 or Q8_0; or as already-encoded ggml bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "models/gguf_file.h"

namespace qtrain {

class GgufWriter {
 public:
  void set(const std::string& key, const GgufValue& v);  // replaces an existing key in place
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);

  // An F32 tensor with HF shape [d0, d1, ...] (ggml ne is that reversed),
  // encoded as `type` with its table entry's from_float (kernels/quant/gguf_blocks.h:
  // F32, F16, BF16, Q8_0 and Q4_0, rounding like ggml's quantize_row_*_ref).
  void add_tensor(const std::string& name, const Tensor& f32, GgmlType type = GgmlType::F32);
  // Pre-encoded bytes; ne in ggml order.
  void add_raw_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                      std::vector<uint8_t> bytes);

  // The whole file in memory (tests, fuzz seeds) or written to `path`
  // (through a temp file + rename, so a crash never leaves half a file).
  std::vector<uint8_t> serialize() const;
  void write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};


}  // namespace qtrain
