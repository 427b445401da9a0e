#include "models/gguf_writer.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>

namespace qtrain {

namespace {

constexpr size_t kAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT

class ByteSink {
 public:
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void pad_to(size_t align) { out.resize((out.size() + align - 1) / align * align, 0); }
  void put_value(const GgufValue& v) {
    switch (v.type) {
      case GgufValueType::U8: put<uint8_t>(uint8_t(v.u)); break;
      case GgufValueType::I8: put<int8_t>(int8_t(v.i)); break;
      case GgufValueType::U16: put<uint16_t>(uint16_t(v.u)); break;
      case GgufValueType::I16: put<int16_t>(int16_t(v.i)); break;
      case GgufValueType::U32: put<uint32_t>(uint32_t(v.u)); break;
      case GgufValueType::I32: put<int32_t>(int32_t(v.i)); break;
      case GgufValueType::U64: put<uint64_t>(v.u); break;
      case GgufValueType::I64: put<int64_t>(v.i); break;
      case GgufValueType::F32: put<float>(float(v.f)); break;
      case GgufValueType::F64: put<double>(v.f); break;
      case GgufValueType::BOOL: put<uint8_t>(v.b ? 1 : 0); break;
      case GgufValueType::STRING: put_string(v.s); break;
      case GgufValueType::ARRAY:
        put<uint32_t>(uint32_t(v.elem_type));
        put<uint64_t>(v.arr.size());
        for (auto& e : v.arr) put_value(e);
        break;
    }
  }
  std::vector<uint8_t> out;
};

}  // namespace

void GgufWriter::set(const std::string& key, const GgufValue& v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = v;
      return;
    }
  kv_.emplace_back(key, v);
}

void GgufWriter::set_string(const std::string& key, const std::string& s) { set(key, GgufValue::of_string(s)); }
void GgufWriter::set_u32(const std::string& key, uint32_t x) { set(key, GgufValue::of_int(GgufValueType::U32, x)); }
void GgufWriter::set_i32(const std::string& key, int32_t x) { set(key, GgufValue::of_int(GgufValueType::I32, x)); }
void GgufWriter::set_f32(const std::string& key, float x) { set(key, GgufValue::of_float(GgufValueType::F32, x)); }
void GgufWriter::set_bool(const std::string& key, bool x) { set(key, GgufValue::of_bool(x)); }
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
  std::vector<GgufValue> es;
  for (auto& s : xs) es.push_back(GgufValue::of_string(s));
  set(key, GgufValue::of_array(GgufValueType::STRING, std::move(es)));
}

void GgufWriter::add_raw_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                                std::vector<uint8_t> bytes) {
  int64_t numel = 1;
  for (auto d : ne) numel *= d;
  QT_CHECK(!ne.empty() && bytes.size() == ggml_row_size(type, ne[0]) * size_t(numel / std::max<int64_t>(ne[0], 1)),
           "GgufWriter: '" + name + "' bytes do not match its shape");
  for (auto& t : tensors_) QT_CHECK(t.name != name, "GgufWriter: duplicate tensor '" + name + "'");
  tensors_.push_back({name, type, ne, std::move(bytes)});
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t, GgmlType type) {
  Tensor host = t.to(Device::CPU, DType::F32);
  const float* x = host.f32();
  const int64_t n = host.numel();
  std::vector<int64_t> ne(host.shape().rbegin(), host.shape().rend());
  if (ne.empty()) ne.push_back(1);
  const GgmlTypeInfo& info = ggml_type_info(type);
  QT_CHECK(info.from_float, std::string("GgufWriter: cannot encode ") + info.name);
  QT_CHECK(ne[0] % info.block_size == 0, std::string("GgufWriter: ") + info.name + " rows of '" + name +
                                             "' are not a multiple of " + std::to_string(info.block_size));
  std::vector<uint8_t> bytes(size_t(n / info.block_size) * info.type_size);
  quantize_row(type, x, bytes.data(), n);
  add_raw_tensor(name, type, ne, std::move(bytes));
}

std::vector<uint8_t> GgufWriter::serialize() const {
  ByteSink s;
  s.out.insert(s.out.end(), {'G', 'G', 'U', 'F'});
  s.put<uint32_t>(3);
  s.put<uint64_t>(tensors_.size());
  s.put<uint64_t>(kv_.size());
  for (auto& [k, v] : kv_) {
    s.put_string(k);
    s.put<uint32_t>(uint32_t(v.type));
    s.put_value(v);
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    s.put_string(t.name);
    s.put<uint32_t>(uint32_t(t.ne.size()));
    for (auto d : t.ne) s.put<uint64_t>(uint64_t(d));
    s.put<uint32_t>(uint32_t(t.type));
    s.put<uint64_t>(offset);
    offset += (t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  s.pad_to(kAlignment);
  for (auto& t : tensors_) {
    s.out.insert(s.out.end(), t.bytes.begin(), t.bytes.end());
    s.pad_to(kAlignment);
  }
  return std::move(s.out);
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> bytes = serialize();
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(tmp + ": cannot create (" + std::strerror(errno) + ")", ErrorKind::Runtime);
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": write failed (disk full?)", ErrorKind::Runtime);
  }
}

}  // namespace qtrain
