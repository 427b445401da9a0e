// Tensor: a contiguous, row-major view (pointer, dtype, shape, device) with
// shared ownership of its storage. Views (view/rows) share the storage.
// There are no strides: every op takes contiguous tensors, which keeps both
// backends simple and makes shapes the whole contract.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/error.h"

namespace qtrain {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;

  // Owning allocations. CUDA allocations go through kernels/device.h.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::CPU);
  // Non-owning wrap of memory someone else keeps alive (mmap, a std::vector, ...).
  static Tensor wrap(void* ptr, const Shape& shape, DType dtype, Device device = Device::CPU);

  bool defined() const { return defined_; }
  explicit operator bool() const { return defined(); }

  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::CUDA; }

  void* raw() const { return ptr_; }
  template <class T>
  T* data() const {
    check_type(sizeof(T));
    return static_cast<T*>(ptr_);
  }
  float* f32() const;
  int32_t* i32() const;

  // Same storage, new shape with the same element count.
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) of dim 0, same storage.
  Tensor rows(int64_t begin, int64_t end) const;
  // Flat elements [begin, end) as a 1-D view.
  Tensor flat(int64_t begin, int64_t end) const;

  // Copies (across devices too). `to` converts dtype as well when asked.
  Tensor to(Device device) const;
  Tensor to(Device device, DType dtype) const;
  Tensor clone() const { return to(device_); }
  void copy_from(const Tensor& src);  // same shape; dtype converted on the host path
  void zero_();

  // Host-side helpers for tests and loaders (copy to CPU F32).
  std::vector<float> to_vector() const;
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape,
                            Device device = Device::CPU, DType dtype = DType::F32);
  // A host tensor holding a copy of v's elements, which are stored as `dtype`
  // (packed quantized formats: U8 codes, I8 rows, F32 scales).
  template <class T>
  static Tensor from_elements(const std::vector<T>& v, const Shape& shape, DType dtype) {
    QT_CHECK(dtype_size(dtype) == sizeof(T), "from_elements: element size does not match the dtype");
    return wrap(const_cast<T*>(v.data()), shape, dtype).clone();
  }

 private:
  void check_type(size_t elem) const;
  std::shared_ptr<void> storage_;
  void* ptr_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  bool defined_ = false;
};

// The bytes of the defined tensors among ts: what a layer or an adapter holds for backward.
inline size_t bytes_of(std::initializer_list<const Tensor*> ts) {
  size_t n = 0;
  for (const Tensor* t : ts) n += t->defined() ? t->nbytes() : 0;
  return n;
}

// Shape/dtype checks used at op entry. They throw internal errors: a wrong shape
// reaching a kernel is a bug in qtrain, not bad user input.
void check_shape(const Tensor& t, const Shape& expect, const char* what);
void check_same_device(const Tensor& a, const Tensor& b, const char* what);

}  // namespace qtrain
