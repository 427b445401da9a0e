// The truncated SVD split (kernels/svd.h): the LAPACK reference, and the
// shape checks both backends share.
#include "kernels/svd.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

void low_rank_svd(Tensor b, Tensor a, Tensor m_in) {
  QT_CHECK(m_in.defined() && m_in.ndim() == 2 && m_in.dtype() == DType::F32, "low_rank_svd: m must be an F32 matrix");
  QT_CHECK(b.defined() && b.ndim() == 2 && b.size(1) >= 1, "low_rank_svd: b must be [rows, r] with r >= 1");
  const int64_t m = m_in.size(0), n = m_in.size(1), r = b.size(1);
  QT_CHECK(m >= 1 && n >= 1, "low_rank_svd: empty matrix " + shape_str(m_in.shape()));
  check_shaped(b, m_in, {m, r}, "low_rank_svd b");
  check_shaped(a, m_in, {r, n}, "low_rank_svd a");
  QT_CHECK(b.dtype() == DType::F32 && a.dtype() == DType::F32, "low_rank_svd: b and a must be F32");
  QT_DISPATCH_CUDA(m_in, low_rank_svd, b, a, m_in);
  const int64_t k = std::min(m, n), kr = std::min(k, r);
  // The row-major [m, n] matrix M is the column-major [n, m] matrix M^T = V S U^T,
  // so sgesdd on it (no transposing copy) returns as its "U" V [n, k] column-major
  // = Vh [k, n] row-major, and as its "VT" U^T [k, m] column-major = U [m, k] row-major.
  Tensor work = m_in.clone();  // sgesdd destroys its input
  std::vector<float> s(static_cast<size_t>(k)), vh(static_cast<size_t>(k * n)), u(static_cast<size_t>(m * k));
  lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', lapack_int(n), lapack_int(m), work.f32(), lapack_int(n),
                                   s.data(), vh.data(), lapack_int(n), u.data(), lapack_int(k));
  if (info != 0)
    throw Error("LAPACK sgesdd failed (info " + std::to_string(info) + ") on a " + std::to_string(m) + "x" +
                    std::to_string(n) + " matrix",
                ErrorKind::Runtime);
  std::fill_n(b.f32(), b.numel(), 0.f);
  std::fill_n(a.f32(), a.numel(), 0.f);
  float* pb = b.f32();
  float* pa = a.f32();
  for (int64_t j = 0; j < kr; ++j) {
    int64_t top = 0;  // the sign convention of kernels/svd.h
    for (int64_t i = 1; i < m; ++i)
      if (std::fabs(u[size_t(i * k + j)]) > std::fabs(u[size_t(top * k + j)])) top = i;
    const float sq = std::sqrt(s[size_t(j)]) * (u[size_t(top * k + j)] < 0.f ? -1.f : 1.f);
    for (int64_t i = 0; i < m; ++i) pb[i * r + j] = u[size_t(i * k + j)] * sq;
    for (int64_t i = 0; i < n; ++i) pa[j * n + i] = vh[size_t(j * n + i)] * sq;
  }
}

}  // namespace qtrain
