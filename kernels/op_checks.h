// Argument checks a public op (kernels/cpu/X.cpp) runs before QT_DISPATCH_CUDA
// (kernels/dispatch.h): what both backends need — operands present, on one
// device, of matching shapes and lengths. Neither the CUDA twin nor the fp32
// reference repeats them; each adds only what is its own (the dtypes it
// supports, alignment, shared-memory limits; the reference: F32 only).
// Wrong operands are a qtrain bug, so these are QT_CHECKs.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/tensor.h"

namespace qtrain {

// t is defined and on ref's device.
inline void check_on(const Tensor& t, const Tensor& ref, const char* what) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(t.device() == ref.device(), std::string(what) + ": on " + (t.is_cuda() ? "the GPU" : "the CPU") +
                                           ", the op's tensors are on " + (ref.is_cuda() ? "the GPU" : "the CPU"));
}

// An operand of ref's shape on ref's device (kernels that index it like ref).
inline void check_like(const Tensor& t, const Tensor& ref, const char* what) {
  check_on(t, ref, what);
  QT_CHECK(t.shape() == ref.shape(),
           std::string(what) + ": shape " + shape_str(t.shape()) + ", expected " + shape_str(ref.shape()));
}

// An operand of ref's element count on ref's device (flat elementwise kernels).
inline void check_numel_like(const Tensor& t, const Tensor& ref, const char* what) {
  check_on(t, ref, what);
  QT_CHECK(t.numel() == ref.numel(), std::string(what) + ": " + shape_str(t.shape()) + " has " +
                                         std::to_string(t.numel()) + " elements, expected " +
                                         std::to_string(ref.numel()) + " as " + shape_str(ref.shape()));
}

// An operand of n elements on ref's device (per-row statistics, weights).
inline void check_len(const Tensor& t, const Tensor& ref, int64_t n, const char* what) {
  check_on(t, ref, what);
  QT_CHECK(t.numel() == n,
           std::string(what) + ": " + std::to_string(t.numel()) + " elements, expected " + std::to_string(n));
}

// An operand of exactly this shape on ref's device.
inline void check_shaped(const Tensor& t, const Tensor& ref, const Shape& shape, const char* what) {
  check_on(t, ref, what);
  check_shape(t, shape, what);
}

// Rows and columns of a tensor seen as a row-major matrix (leading dims
// flattened); at least one dimension and, when non_empty, at least one column.
struct RowsCols {
  int64_t rows = 0, cols = 0;
};
inline RowsCols check_rows_cols(const Tensor& t, const char* what, bool non_empty = false) {
  QT_CHECK(t.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(t.ndim() >= 1, std::string(what) + ": needs at least one dimension");
  const int64_t cols = t.size(-1);
  QT_CHECK(!non_empty || cols > 0, std::string(what) + ": empty rows in " + shape_str(t.shape()));
  return {cols ? t.numel() / cols : 0, cols};
}

}  // namespace qtrain
