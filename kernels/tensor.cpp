#include "kernels/tensor.h"

#include <cstdlib>
#include <cstring>

#include "kernels/device.h"

namespace qtrain {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

static int64_t count(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape) QT_CHECK(d >= 0, "negative dimension in " + shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.defined_ = true;
  size_t bytes = std::max<size_t>(t.nbytes(), 1);
  if (device == Device::CUDA) {
    void* p = cuda_alloc(bytes);
    t.storage_ = std::shared_ptr<void>(p, [](void* q) { cuda_free(q); });
  } else {
    // 64-byte alignment: whole cache lines, and safe for any SIMD width.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes", ErrorKind::Runtime);
    t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  t.ptr_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::wrap(void* ptr, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.ptr_ = ptr;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.defined_ = true;
  return t;
}

int64_t Tensor::size(int d) const {
  if (d < 0) d += ndim();
  QT_CHECK(d >= 0 && d < ndim(), "dim " + std::to_string(d) + " out of range for " + shape_str(shape_));
  return shape_[size_t(d)];
}

int64_t Tensor::numel() const { return defined_ ? count(shape_) : 0; }

void Tensor::check_type(size_t elem) const {
  QT_CHECK(defined_, "use of an undefined tensor");
  QT_CHECK(elem == dtype_size(dtype_), std::string("element size mismatch for dtype ") + dtype_name(dtype_));
}

float* Tensor::f32() const {
  QT_CHECK(defined_ && dtype_ == DType::F32, std::string("expected F32 tensor, got ") + dtype_name(dtype_));
  return static_cast<float*>(ptr_);
}

int32_t* Tensor::i32() const {
  QT_CHECK(defined_ && dtype_ == DType::I32, std::string("expected I32 tensor, got ") + dtype_name(dtype_));
  return static_cast<int32_t*>(ptr_);
}

Tensor Tensor::view(const Shape& shape) const {
  QT_CHECK(count(shape) == numel(), "view " + shape_str(shape) + " of " + shape_str(shape_));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  QT_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
           "rows [" + std::to_string(begin) + "," + std::to_string(end) + ") of " + shape_str(shape_));
  Tensor t = *this;
  int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.shape_[0] = end - begin;
  t.ptr_ = static_cast<char*>(ptr_) + size_t(begin * row) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::flat(int64_t begin, int64_t end) const {
  QT_CHECK(begin >= 0 && begin <= end && end <= numel(), "flat range out of bounds");
  Tensor t = *this;
  t.shape_ = {end - begin};
  t.ptr_ = static_cast<char*>(ptr_) + size_t(begin) * dtype_size(dtype_);
  return t;
}

// Host-side element conversion between any two float dtypes.
static void convert_host(void* dst, DType dt, const void* src, DType st, int64_t n) {
  if (dt == st) {
    std::memcpy(dst, src, size_t(n) * dtype_size(dt));
    return;
  }
  auto load = [&](int64_t i) -> float {
    switch (st) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::I32: return float(static_cast<const int32_t*>(src)[i]);
      case DType::U8: return float(static_cast<const uint8_t*>(src)[i]);
      case DType::I8: return float(static_cast<const int8_t*>(src)[i]);
    }
    return 0.f;
  };
  // Loading a 7B checkpoint converts ~7e9 BF16 weights (and faults in the mapped
  // file as it reads): large tensors are split over the cores, each element
  // converted as before.
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 22))
  for (int64_t i = 0; i < n; ++i) {
    float v = load(i);
    switch (dt) {
      case DType::F32: static_cast<float*>(dst)[i] = v; break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(v); break;
      case DType::I32: static_cast<int32_t*>(dst)[i] = int32_t(v); break;
      case DType::U8: static_cast<uint8_t*>(dst)[i] = uint8_t(v); break;
      case DType::I8: static_cast<int8_t*>(dst)[i] = int8_t(v); break;
    }
  }
}

void Tensor::copy_from(const Tensor& src) {
  QT_CHECK(src.numel() == numel(), "copy_from " + shape_str(src.shape_) + " into " + shape_str(shape_));
  if (dtype_ == src.dtype_) {
    int kind = -1;
    if (device_ == Device::CPU && src.device_ == Device::CPU) {
      std::memcpy(ptr_, src.ptr_, nbytes());
      return;
    }
    if (device_ == Device::CUDA && src.device_ == Device::CPU) kind = 0;
    if (device_ == Device::CPU && src.device_ == Device::CUDA) kind = 1;
    if (device_ == Device::CUDA && src.device_ == Device::CUDA) kind = 2;
    cuda_copy(ptr_, src.ptr_, nbytes(), kind);
    return;
  }
  // Different dtypes: convert on the host (loaders and tests only; hot paths use kernels).
  Tensor s = src.device_ == Device::CPU ? src : src.to(Device::CPU);
  if (device_ == Device::CPU) {
    convert_host(ptr_, dtype_, s.ptr_, s.dtype_, numel());
  } else {
    Tensor tmp = Tensor::empty(shape_, dtype_, Device::CPU);
    convert_host(tmp.ptr_, dtype_, s.ptr_, s.dtype_, numel());
    copy_from(tmp);
  }
}

Tensor Tensor::to(Device device) const { return to(device, dtype_); }

Tensor Tensor::to(Device device, DType dtype) const {
  Tensor t = empty(shape_, dtype, device);
  t.copy_from(*this);
  return t;
}

void Tensor::zero_() {
  if (!defined_ || nbytes() == 0) return;
  if (device_ == Device::CUDA)
    cuda_memset0(ptr_, nbytes());
  else
    std::memset(ptr_, 0, nbytes());
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<size_t>(numel()));
  Tensor host = Tensor::wrap(v.data(), shape_, DType::F32, Device::CPU);
  host.copy_from(*this);
  return v;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape, Device device, DType dtype) {
  Tensor t = empty(shape, dtype, device);
  t.copy_from(Tensor::wrap(const_cast<float*>(v.data()), shape, DType::F32, Device::CPU));
  return t;
}

void check_shape(const Tensor& t, const Shape& expect, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(t.shape() == expect, std::string(what) + ": shape " + shape_str(t.shape()) + ", expected " + shape_str(expect));
}

void check_same_device(const Tensor& a, const Tensor& b, const char* what) {
  QT_CHECK(a.device() == b.device(), std::string(what) + ": tensors on different devices");
}

}  // namespace qtrain
