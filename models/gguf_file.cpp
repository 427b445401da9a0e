#include "models/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "kernels/error.h"

namespace qtrain {

bool is_gguf_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".gguf";
}


namespace {

constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are not real files
constexpr int kMaxDims = 4;        // GGML_MAX_DIMS

// Reads little-endian values from [pos, end), throwing on any overrun. `what`
// (the key or tensor being read) goes into the message.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* base, size_t size) : path_(path), base_(base), size_(size) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    uint64_t len = read<uint64_t>(what);
    if (len > left())
      throw Error(path_ + ": " + what + ": string length " + std::to_string(len) + " at byte " +
                  std::to_string(pos_ - 8) + " runs past the end of the file (" + std::to_string(size_) +
                  " bytes): truncated or damaged file");
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  void need(size_t n, const std::string& what) const {
    if (n > left())
      throw Error(path_ + ": truncated file: " + what + " needs " + std::to_string(n) + " bytes at byte " +
                  std::to_string(pos_) + ", file has " + std::to_string(size_));
  }

 private:
  const std::string& path_;
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
};

// Smallest encoding of one element, to reject element counts the rest of the
// file cannot possibly hold before reserving memory for them.
size_t min_elem_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(GgufValueType::F64); }

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& what, const std::string& path, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::U8: v.u = c.read<uint8_t>(what); v.i = int64_t(v.u); break;
    case GgufValueType::I8: v.i = c.read<int8_t>(what); v.u = uint64_t(v.i); break;
    case GgufValueType::U16: v.u = c.read<uint16_t>(what); v.i = int64_t(v.u); break;
    case GgufValueType::I16: v.i = c.read<int16_t>(what); v.u = uint64_t(v.i); break;
    case GgufValueType::U32: v.u = c.read<uint32_t>(what); v.i = int64_t(v.u); break;
    case GgufValueType::I32: v.i = c.read<int32_t>(what); v.u = uint64_t(v.i); break;
    case GgufValueType::U64: v.u = c.read<uint64_t>(what); v.i = int64_t(v.u); break;
    case GgufValueType::I64: v.i = c.read<int64_t>(what); v.u = uint64_t(v.i); break;
    case GgufValueType::F32: v.f = c.read<float>(what); break;
    case GgufValueType::F64: v.f = c.read<double>(what); break;
    case GgufValueType::BOOL: {
      uint8_t b = c.read<uint8_t>(what);
      if (b > 1) throw Error(path + ": " + what + ": bool value " + std::to_string(b) + " is not 0 or 1");
      v.b = b != 0;
      break;
    }
    case GgufValueType::STRING: v.s = c.read_string(what); break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        throw Error(path + ": " + what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      uint32_t et = c.read<uint32_t>(what);
      if (!valid_value_type(et))
        throw Error(path + ": " + what + ": unknown array element type " + std::to_string(et));
      v.elem_type = GgufValueType(et);
      uint64_t n = c.read<uint64_t>(what);
      if (n > c.left() / min_elem_bytes(v.elem_type))
        throw Error(path + ": " + what + ": array of " + std::to_string(n) + " " +
                    gguf_value_type_name(v.elem_type) + " runs past the end of the file");
      v.arr.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(c, v.elem_type, what, path, depth + 1));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
      return true;
    default: return false;
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      ::close(fd);
      throw Error(path + ": mmap failed (" + std::strerror(errno) + ")", ErrorKind::Runtime);
    }
    base_ = static_cast<const uint8_t*>(map_);
  }
  ::close(fd);
  try {
    parse();
  } catch (...) {
    if (map_) munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

GgufFile::GgufFile(const std::string& name, const uint8_t* data, size_t size)
    : path_(name), base_(data), size_(size) {
  parse();
}

GgufFile::~GgufFile() {
  if (map_) munmap(map_, size_);
}

void GgufFile::parse() {
  Cursor c(path_, base_, size_);
  if (size_ < 4 || std::memcmp(base_, "GGUF", 4) != 0)
    throw Error(path_ + ": bad magic: not a GGUF file (expected the bytes \"GGUF\" at offset 0)");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("header version");
  if (version_ == 1)
    throw Error(path_ + ": GGUF version 1 is not supported (v2 and v3 are); re-convert with a newer llama.cpp");
  if (version_ != 2 && version_ != 3) {
    bool swapped = version_ == 0x02000000u || version_ == 0x03000000u;
    throw Error(path_ + ": unsupported GGUF version " + std::to_string(version_) +
                (swapped ? " (a big-endian file; only little-endian GGUF is supported)" : " (supported: 2, 3)"));
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each entry takes at least a few bytes: reject absurd counts before looping.
  if (n_kv > c.left() / 13)
    throw Error(path_ + ": metadata count " + std::to_string(n_kv) + " cannot fit in the file: truncated or damaged");
  if (n_tensors > c.left() / 24)
    throw Error(path_ + ": tensor count " + std::to_string(n_tensors) + " cannot fit in the file: truncated or damaged");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key #" + std::to_string(k));
    std::string what = "metadata '" + key + "'";
    uint32_t t = c.read<uint32_t>(what);
    if (!valid_value_type(t)) throw Error(path_ + ": " + what + ": unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, GgufValueType(t), what, path_, 0);
    if (!kv_index_.emplace(key, kv_.size()).second) throw Error(path_ + ": duplicate " + what);
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_int() || a->u == 0 || a->u > (1u << 30) || (a->u & (a->u - 1)) != 0)
      throw Error(path_ + ": metadata 'general.alignment' must be a power of two, got " + std::to_string(a->i));
    alignment_ = size_t(a->u);
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor info #" + std::to_string(k));
    std::string what = "tensor '" + t.name + "'";
    uint32_t n_dims = c.read<uint32_t>(what);
    if (n_dims == 0 || n_dims > uint32_t(kMaxDims))
      throw Error(path_ + ": " + what + ": " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>(what);
      if (ne > (uint64_t(1) << 40) || (ne != 0 && uint64_t(numel) > (uint64_t(1) << 50) / ne))
        throw Error(path_ + ": " + what + ": dimension " + std::to_string(d) + " = " + std::to_string(ne) +
                    " is out of range");
      t.ne.push_back(int64_t(ne));
      numel *= int64_t(ne);
    }
    uint32_t type = c.read<uint32_t>(what);
    const GgmlTypeInfo* info = ggml_type_info(type);
    if (!info) throw Error(path_ + ": " + what + ": unknown ggml type " + std::to_string(type));
    t.type = GgmlType(type);
    if (t.ne[0] % info->block_size != 0)
      throw Error(path_ + ": " + what + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                  info->name + " block size " + std::to_string(info->block_size));
    t.nbytes = size_t(numel / info->block_size) * info->type_size;
    t.offset = c.read<uint64_t>(what);
    if (t.offset % alignment_ != 0)
      throw Error(path_ + ": " + what + ": data offset " + std::to_string(t.offset) + " is not a multiple of " +
                  "the alignment " + std::to_string(alignment_));
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) throw Error(path_ + ": duplicate " + what);
    tensors_.push_back(std::move(t));
  }

  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  // The data section may be empty (a vocab-only file), so data_offset_ may
  // equal the file size; only tensors must lie inside it.
  size_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw Error(path_ + ": tensor '" + t.name + "' (" + ggml_type_info(t.type).name + ", " +
                  std::to_string(t.nbytes) + " bytes at data offset " + std::to_string(t.offset) +
                  ") runs past the end of the file: the data section has " + std::to_string(data_size) +
                  " bytes (truncated file?)");
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const GgufValue& v, const char* want) {
  std::string got = gguf_value_type_name(v.type);
  if (v.type == GgufValueType::ARRAY) got += std::string(" of ") + gguf_value_type_name(v.elem_type);
  throw Error(path + ": metadata '" + key + "' is " + got + ", expected " + want);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata '" + key + "'");
  if (v->type != GgufValueType::STRING) wrong_type(path_, key, *v, "a string");
  return v->s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return find(key) ? get_string(key) : fallback;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata '" + key + "'");
  if (!v->is_int()) wrong_type(path_, key, *v, "an integer");
  return v->i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata '" + key + "'");
  if (v->is_float()) return v->f;
  if (v->is_int()) return double(v->i);
  wrong_type(path_, key, *v, "a number");
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return find(key) ? get_float(key) : fallback;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata '" + key + "'");
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING)
    wrong_type(path_, key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (auto& e : v->arr) out.push_back(e.s);
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata '" + key + "'");
  GgufValue probe;
  probe.type = v->elem_type;
  if (v->type != GgufValueType::ARRAY || !probe.is_int()) wrong_type(path_, key, *v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (auto& e : v->arr) out.push_back(e.i);
  return out;
}

}  // namespace qtrain
