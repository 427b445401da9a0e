// GGUF (v2/v3), the llama.cpp model file: "GGUF", version, tensor count,
// metadata count; typed key/value metadata; tensor infos (name, dims in ggml
// order = fastest first, ggml type, offset); padding to general.alignment;
// then the tensor data. Read through an mmap; everything is bounds-checked at
// open, so a bad file is one qtrain::Error naming the file and the key/tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/quant/gguf_blocks.h"

namespace qtrain {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Integers of every width land in i (signed) or u; floats
// in f; arrays keep their element type and elements (arrays may nest).
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s{};  // {}: the builders below may leave it out without a warning
  GgufValueType elem_type = GgufValueType::U8;  // ARRAY only
  std::vector<GgufValue> arr{};                 // ARRAY only

  bool is_int() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }

  // Values to write (GgufWriter, the export, tests). An integer of any width
  // keeps i and u in step, as a read one does.
  static GgufValue of_int(GgufValueType t, int64_t x) { return {.type = t, .u = uint64_t(x), .i = x}; }
  static GgufValue of_float(GgufValueType t, double x) { return {.type = t, .f = x}; }
  static GgufValue of_bool(bool x) { return {.type = GgufValueType::BOOL, .b = x}; }
  static GgufValue of_string(std::string x) { return {.type = GgufValueType::STRING, .s = std::move(x)}; }
  static GgufValue of_array(GgufValueType elem, std::vector<GgufValue> xs) {
    return {.type = GgufValueType::ARRAY, .elem_type = elem, .arr = std::move(xs)};
  }
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;      // from the start of the data section
  size_t nbytes = 0;
  int64_t numel() const;
};

// Whether a path names a GGUF file: it ends in ".gguf", in any case.
bool is_gguf_path(const std::string& path);

class GgufFile {
 public:
  // mmaps and validates `path`.
  explicit GgufFile(const std::string& path);
  // Parses bytes someone else keeps alive (tests, the fuzzer). `name` is used
  // in messages.
  GgufFile(const std::string& name, const uint8_t* data, size_t size);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Metadata keys in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: missing key or wrong type is an error naming file and key.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // accepts integers too
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Defaults when the key is absent (still an error when present but wrong).
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return base_ + data_offset_ + t.offset; }

 private:
  void parse();
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // set when we own an mmap
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace qtrain
