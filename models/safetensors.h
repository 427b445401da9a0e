// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data. Files are mmapped for reading.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace qtrain {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte range inside the data section
};

class SafetensorsFile {
 public:
  // Validates the whole header against the file size; every problem is a
  // qtrain::Error naming the file and the tensor/field.
  explicit SafetensorsFile(const std::string& path);
  // Parses bytes someone else keeps alive (tests, the fuzzer); `name` is used
  // in messages.
  SafetensorsFile(const std::string& name, const void* data, size_t size);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Raw bytes of a tensor inside the mapping.
  const void* data(const SafetensorsEntry& e) const;
  // A tensor converted to F32 on the host.
  Tensor load_f32(const std::string& name) const;

 private:
  void parse_header();  // validates map_[0, size_) into entries_ and metadata_

  std::string path_;
  void* map_ = nullptr;
  bool owns_map_ = false;  // munmap in the destructor
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device; copied to host) atomically enough for callers
// that rename afterwards: the file is written and fsynced. Names sorted.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qtrain
