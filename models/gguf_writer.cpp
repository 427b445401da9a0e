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

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    float amax = 0.f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[i * QK8_0 + j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = int8_t(std::roundf(x[i * QK8_0 + j] * id));
  }
}

// ggml's quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    const float* xb = x + i * QK4_0;
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK4_0; ++j)
      if (amax < std::fabs(xb[j])) amax = std::fabs(xb[j]), max = xb[j];
    const float d = max / -8.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const uint8_t q0 = uint8_t(std::min<int8_t>(15, int8_t(xb[j] * id + 8.5f)));
      const uint8_t q1 = uint8_t(std::min<int8_t>(15, int8_t(xb[j + QK4_0 / 2] * id + 8.5f)));
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void GgufWriter::set(const std::string& key, const GgufValue& v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = v;
      return;
    }
  kv_.emplace_back(key, v);
}

void GgufWriter::set_string(const std::string& key, const std::string& s) {
  GgufValue v;
  v.type = GgufValueType::STRING;
  v.s = s;
  set(key, v);
}
void GgufWriter::set_u32(const std::string& key, uint32_t x) {
  GgufValue v;
  v.type = GgufValueType::U32;
  v.u = x;
  v.i = x;
  set(key, v);
}
void GgufWriter::set_i32(const std::string& key, int32_t x) {
  GgufValue v;
  v.type = GgufValueType::I32;
  v.i = x;
  v.u = uint64_t(x);
  set(key, v);
}
void GgufWriter::set_f32(const std::string& key, float x) {
  GgufValue v;
  v.type = GgufValueType::F32;
  v.f = x;
  set(key, v);
}
void GgufWriter::set_bool(const std::string& key, bool x) {
  GgufValue v;
  v.type = GgufValueType::BOOL;
  v.b = x;
  set(key, v);
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = GgufValueType::STRING;
  for (auto& s : xs) {
    GgufValue e;
    e.type = GgufValueType::STRING;
    e.s = s;
    v.arr.push_back(std::move(e));
  }
  set(key, v);
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
  std::vector<uint8_t> bytes;
  switch (type) {
    case GgmlType::F32:
      bytes.resize(size_t(n) * 4);
      std::memcpy(bytes.data(), x, bytes.size());
      break;
    case GgmlType::F16:
    case GgmlType::BF16:
      bytes.resize(size_t(n) * 2);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = type == GgmlType::F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
      break;
    case GgmlType::Q8_0: {
      QT_CHECK(ne[0] % QK8_0 == 0, "GgufWriter: Q8_0 rows of '" + name + "' are not a multiple of 32");
      std::vector<BlockQ8_0> blocks(size_t(n / QK8_0));
      quantize_row_q8_0(x, blocks.data(), n);
      bytes.resize(blocks.size() * sizeof(BlockQ8_0));
      std::memcpy(bytes.data(), blocks.data(), bytes.size());
      break;
    }
    case GgmlType::Q4_0: {
      QT_CHECK(ne[0] % QK4_0 == 0, "GgufWriter: Q4_0 rows of '" + name + "' are not a multiple of 32");
      std::vector<BlockQ4_0> blocks(size_t(n / QK4_0));
      quantize_row_q4_0(x, blocks.data(), n);
      bytes.resize(blocks.size() * sizeof(BlockQ4_0));
      std::memcpy(bytes.data(), blocks.data(), bytes.size());
      break;
    }
    default: QT_CHECK(false, std::string("GgufWriter: cannot encode ") + ggml_type_name(type));
  }
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
