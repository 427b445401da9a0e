// Argument checks a public op (kernels/cpu/X.cpp) runs before QT_DISPATCH_CUDA
// (kernels/dispatch.h): what both backends need — operands present, on one
// device, of matching shapes and lengths. Neither the CUDA twin nor the fp32
// reference repeats them; each adds only what is its own (the dtypes it
// supports, alignment, shared-memory limits; the reference: F32 only).
// Wrong operands are a qtrain bug, so these are QT_CHECKs.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/seq_pos.h"
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

// A KV-cache append: src [B,T,H,D] into cache [B,Tc,H',D'] (H' D' = H D) at positions pos.. of
// every row, within the cache over every replay of a device position. `op` leads each message.
inline void check_kv_append(const Tensor& cache, const Tensor& src, SeqPos pos, const std::string& op) {
  QT_CHECK(cache.defined() && src.defined() && cache.ndim() == 4 && src.ndim() == 4 && cache.dtype() == src.dtype() &&
               src.device() == cache.device(),
           op + ": cache [B,Tc,H,D] and src [B,T,H,D] of one dtype and device");
  const int64_t T = src.size(1), Tc = cache.size(1);
  QT_CHECK(cache.size(0) == src.size(0) && cache.size(2) * cache.size(3) == src.size(2) * src.size(3),
           op + ": cache " + shape_str(cache.shape()) + " for " + shape_str(src.shape()));
  QT_CHECK(pos.first >= 0 && pos.first + T <= Tc && (!pos.dev || pos.limit <= Tc),
           op + ": positions " + std::to_string(pos.first) + ".." + std::to_string(pos.extent(int(T))) +
               " exceed the cache's " + std::to_string(Tc));
}

}  // namespace qtrain
