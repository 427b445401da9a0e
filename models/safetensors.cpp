#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace qtrain {

namespace {

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "BF16") out = DType::BF16;
  else if (s == "F16") out = DType::F16;
  else if (s == "I32") out = DType::I32;
  else if (s == "U8") out = DType::U8;
  else if (s == "I8") out = DType::I8;
  else return false;
  return true;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(path + ": cannot stat");
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw Error(path + ": truncated safetensors file (" + std::to_string(size_) + " bytes, no header)");
  }
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(path + ": mmap failed", ErrorKind::Runtime);
  }
  owns_map_ = true;
  try {
    parse_header();
  } catch (...) {
    munmap(map_, size_);  // the destructor does not run for a throwing constructor
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::SafetensorsFile(const std::string& name, const void* data, size_t size)
    : path_(name), map_(const_cast<void*>(data)), size_(size) {
  if (size_ < 8) throw Error(name + ": truncated safetensors file (" + std::to_string(size_) + " bytes, no header)");
  parse_header();
}

void SafetensorsFile::parse_header() {
  const std::string& path = path_;
  uint64_t hlen = 0;
  std::memcpy(&hlen, map_, 8);
  if (hlen > size_ - 8)
    throw Error(path + ": header length " + std::to_string(hlen) + " runs past the end of the file (" +
                std::to_string(size_) + " bytes): truncated or not a safetensors file");
  data_start_ = 8 + hlen;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(static_cast<const char*>(map_) + 8, static_cast<const char*>(map_) + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(path + ": header is not a JSON object");
  size_t data_size = size_ - data_start_;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto& [k, m] : v.items())
          if (m.is_string()) metadata_[k] = m.get<std::string>();
      continue;
    }
    auto where = path + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw Error(where + ": needs dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = name;
    if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), e.dtype))
      throw Error(where + ": unknown dtype " + v["dtype"].dump() + " (supported: F32, BF16, F16, I32, U8, I8)");
    if (!v["shape"].is_array()) throw Error(where + ": shape is not an array");
    uint64_t n = 1;  // elements; a product past 2^64 cannot match a file's size anyway
    for (auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(where + ": bad shape " + v["shape"].dump());
      e.shape.push_back(d.get<int64_t>());
      if (__builtin_mul_overflow(n, uint64_t(e.shape.back()), &n))
        throw Error(where + ": shape " + v["shape"].dump() + " has more elements than any file can hold");
    }
    auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw Error(where + ": data_offsets must be [begin, end]");
    e.begin = off[0].get<size_t>();
    e.end = off[1].get<size_t>();
    if (e.begin > e.end || e.end > data_size)
      throw Error(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                  "] out of range: the data section has " + std::to_string(data_size) + " bytes");
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(n, uint64_t(dtype_size(e.dtype)), &bytes) || e.end - e.begin != bytes)
      throw Error(where + ": " + std::to_string(e.end - e.begin) + " bytes do not hold shape " + shape_str(e.shape) +
                  " of " + dtype_name(e.dtype));
    entries_.push_back(std::move(e));
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && owns_map_) munmap(map_, size_);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const void* SafetensorsFile::data(const SafetensorsEntry& e) const {
  return static_cast<const char*>(map_) + data_start_ + e.begin;
}

Tensor SafetensorsFile::load_f32(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) throw Error(path_ + ": no tensor named '" + name + "'");
  const void* raw = data(*e);
  if (reinterpret_cast<uintptr_t>(raw) % dtype_size(e->dtype) != 0) {
    // The format does not align tensors: copy an unaligned one before reading it as its dtype.
    Tensor aligned = Tensor::empty(e->shape, e->dtype);
    std::memcpy(aligned.raw(), raw, e->end - e->begin);
    return aligned.to(Device::CPU, DType::F32);
  }
  Tensor src = Tensor::wrap(const_cast<void*>(raw), e->shape, e->dtype);
  return src.to(Device::CPU, DType::F32);
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> sorted = tensors;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.first < b.first; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t off = 0;
  for (auto& [name, t] : sorted) {
    nlohmann::json shape = nlohmann::json::array();
    for (auto d : t.shape()) shape.push_back(d);
    header[name] = {{"dtype", dtype_name(t.dtype())}, {"shape", shape}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // align the data section to 8 bytes
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create (" + std::strerror(errno) + ")", ErrorKind::Runtime);
  uint64_t hlen = h.size();
  bool ok = std::fwrite(&hlen, 8, 1, f) == 1 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (auto& [name, t] : sorted) {
    if (!ok) break;
    Tensor host = t.device() == Device::CPU ? t : t.to(Device::CPU);
    ok = std::fwrite(host.raw(), 1, host.nbytes(), f) == host.nbytes();
  }
  ok = ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  int err = ok ? 0 : errno;  // ENOSPC, or EFBIG past `ulimit -f`
  if (std::fclose(f) != 0 && ok) ok = false, err = errno;
  if (!ok) throw Error(path + ": write failed (" + (err ? std::strerror(err) : "disk full?") + ")", ErrorKind::Runtime);
}

}  // namespace qtrain
