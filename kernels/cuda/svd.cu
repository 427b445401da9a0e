// The truncated SVD split (kernels/svd.h) on the GPU; the reference is LAPACK's
// sgesdd in kernels/cpu/svd.cpp.
//
// Why an eigensolver on the Gram matrix, not a cuSOLVER SVD routine: LoftQ's
// residual W - deq(Q) is quantization noise, whose singular values are nearly
// flat (NF4 on a random 512x1376 weight: sigma_1 0.109, sigma_8 0.1056,
// sigma_9 0.1055). A randomized SVD (cusolverDnXgesvdr) converges on the
// top-r subspace at the rate (sigma_{r+p} / sigma_r)^(2q+1), so to match the
// exact product B A it needs ~100 power iterations even at p = 2r (a double
// precision experiment of subspace iteration, gesvdr's algorithm, on that
// residual at r 8: ||BA - BA_exact|| / ||BA_exact|| = 0.29 at q 20, 1.4e-2 at
// q 50, 1.4e-4 at q 100), and it would still not be peft's full
// torch.linalg.svd. A full SVD (cusolverDnXgesvd / gesvdj) of a 4096 x 11008
// matrix takes seconds on the GPU, most of it on the n - r singular vectors
// that are thrown away.
// Here: G = M M^T (or M^T M, the short side k = min(rows, cols)) in F64 on
// cuBLAS, then cuSOLVER's syevdx for only the top r eigenpairs of G
// (lambda = sigma^2, eigenvectors U, or V for a tall M), and the other side's
// vectors from one product (M^T U = V S, or M V = U S). That is exact up to
// rounding: in F64 the Gram matrix's squared condition number costs nothing at
// F32 output precision for the top singular values (their eigenvalue error is
// ~eps64 k lambda_1, their vector error ~eps64 lambda_1 / gap(lambda), below
// sgesdd's own eps32 sigma_1 / gap(sigma)). Components with
// sigma_j <= 1e-6 sigma_1 (lambda below 1e-12 lambda_1, where the F64
// eigenvalue is mostly rounding) are left zero, as are those past min(rows, cols).
#include <cublas_v2.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/svd.h"

#define CUSOLVER_CHECK(call)                                                                               \
  do {                                                                                                     \
    cusolverStatus_t qt_st_ = (call);                                                                      \
    if (qt_st_ != CUSOLVER_STATUS_SUCCESS)                                                                 \
      throw ::qtrain::Error(std::string("cuSOLVER error in ") + #call + " (" + __FILE__ + ":" +            \
                                std::to_string(__LINE__) + "): status " + std::to_string(int(qt_st_)),     \
                            qt_st_ == CUSOLVER_STATUS_ALLOC_FAILED ? ::qtrain::ErrorKind::OutOfMemory      \
                                                                   : ::qtrain::ErrorKind::Runtime);        \
  } while (0)

namespace qtrain::cuda {
namespace {

// cuBLAS (legacy API: F64 products) and cuSOLVER handles, made on first use and
// kept: the op runs once per LoftQ round of each Linear, on the context stream.
struct SvdHandles {
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  cusolverDnParams_t params = nullptr;
};
SvdHandles& handles() {
  static SvdHandles h;
  static std::once_flag once;
  std::call_once(once, [] {
    CUBLAS_CHECK(cublasCreate(&h.blas));
    CUSOLVER_CHECK(cusolverDnCreate(&h.solver));
    CUSOLVER_CHECK(cusolverDnCreateParams(&h.params));
  });
  CUBLAS_CHECK(cublasSetStream(h.blas, stream()));
  CUSOLVER_CHECK(cusolverDnSetStream(h.solver, stream()));
  return h;
}

__global__ void to_f64_kernel(double* d, const float* s, int64_t n) {
  QT_GRID_STRIDE(i, n)
    d[i] = double(s[i]);
}

// Rows x cols F32 factor `out`, row-major with ld cols, whose entry (i, jo)
// (or (jo, i), rows_are_rank) comes from column e = h - 1 - jo (syevdx returns
// ascending eigenvalues) of the column-major len x h F64 matrix src:
// src * sqrt(sigma_e) (src = the eigenvectors) or src / sqrt(sigma_e) (src =
// the product with M, sigma_e times a singular vector). Zero past h and for
// negligible sigma.
__global__ void factor_kernel(float* out, int64_t rows, int64_t cols, bool rows_are_rank, const double* src,
                              int64_t len, const double* lambda, int64_t h, bool src_is_eigvec) {
  const double lmax = lambda[h - 1];
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < rows * cols;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = idx / cols, col = idx % cols;
    const int64_t jo = rows_are_rank ? row : col, i = rows_are_rank ? col : row;
    float v = 0.f;
    if (jo < h) {
      const int64_t e = h - 1 - jo;
      const double lam = lambda[e];
      if (lam > 1e-12 * lmax && lam > 0.0) {
        const double sq = sqrt(sqrt(lam));  // sqrt(sigma)
        const double x = src[e * len + i];
        v = float(src_is_eigvec ? x * sq : x / sq);
      }
    }
    out[idx] = v;
  }
}

// The sign convention of kernels/svd.h, one block per factor j: the first
// largest-magnitude entry of b's column j made positive, a's row j flipped with
// it. A block-wide arg-max (largest |value|, then smallest index), then the flip.
__global__ void sign_flip_kernel(float* b, int64_t rows, float* a, int64_t cols, int64_t r) {
  const int64_t j = blockIdx.x;
  __shared__ float best_v[256];
  __shared__ int64_t best_i[256];
  float v = -1.f;
  int64_t at = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    const float x = fabsf(b[i * r + j]);
    if (x > v) v = x, at = i;  // strided ascending i: the first of ties in this thread
  }
  best_v[threadIdx.x] = v;
  best_i[threadIdx.x] = at;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int64_t oi = best_i[threadIdx.x + s];
      if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x]))
        best_v[threadIdx.x] = ov, best_i[threadIdx.x] = oi;
    }
    __syncthreads();
  }
  if (!(b[best_i[0] * r + j] < 0.f)) return;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) b[i * r + j] = -b[i * r + j];
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) a[j * cols + i] = -a[j * cols + i];
}

}  // namespace

void low_rank_svd(Tensor b, Tensor a, Tensor m_in) {
  check_cuda_dtype(m_in, DType::F32, "low_rank_svd m");
  const int64_t m = m_in.size(0), n = m_in.size(1), r = b.size(1);
  const int64_t k = std::min(m, n), big = std::max(m, n), h = std::min(k, r);
  const bool wide = m <= n;  // the Gram matrix of the short side: M M^T (wide) or M^T M (tall)
  SvdHandles& hd = handles();
  cudaStream_t s = stream();
  auto f64 = [](int64_t count) { return Tensor::empty({count * int64_t(sizeof(double))}, DType::U8, Device::CUDA); };
  // X = M as column-major [n, m], ld n (M row-major), in F64.
  Tensor x_buf = f64(m * n), g_buf = f64(k * k), lam_buf = f64(k), p_buf = f64(big * h);
  double* X = static_cast<double*>(x_buf.raw());
  double* G = static_cast<double*>(g_buf.raw());
  double* lam = static_cast<double*>(lam_buf.raw());
  double* P = static_cast<double*>(p_buf.raw());
  to_f64_kernel<<<grid_for(m * n, 256), 256, 0, s>>>(X, m_in.f32(), m * n);
  CUDA_CHECK_LAUNCH("low_rank_svd to_f64");
  const double one = 1.0, zero = 0.0;
  if (wide)  // G [m, m] = X^T X = M M^T
    CUBLAS_CHECK(cublasDgemm(hd.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(m), int(n), &one, X, int(n), X, int(n),
                             &zero, G, int(m)));
  else  // G [n, n] = X X^T = M^T M
    CUBLAS_CHECK(cublasDgemm(hd.blas, CUBLAS_OP_N, CUBLAS_OP_T, int(n), int(n), int(m), &one, X, int(n), X, int(n),
                             &zero, G, int(n)));
  // The h largest eigenpairs (indices k-h+1..k, 1-based, ascending) into lam and G's first h columns.
  double vl = 0, vu = 0;
  int64_t found = 0;
  size_t dev_bytes = 0, host_bytes = 0;
  CUSOLVER_CHECK(cusolverDnXsyevdx_bufferSize(hd.solver, hd.params, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                              CUBLAS_FILL_MODE_LOWER, k, CUDA_R_64F, G, k, &vl, &vu, k - h + 1, k,
                                              &found, CUDA_R_64F, lam, CUDA_R_64F, &dev_bytes, &host_bytes));
  Tensor work = Tensor::empty({int64_t(std::max<size_t>(dev_bytes, 1))}, DType::U8, Device::CUDA);
  Tensor info_buf = Tensor::empty({1}, DType::I32, Device::CUDA);
  std::vector<char> host_work(std::max<size_t>(host_bytes, 1));
  int* info_d = static_cast<int*>(info_buf.raw());
  CUSOLVER_CHECK(cusolverDnXsyevdx(hd.solver, hd.params, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                   CUBLAS_FILL_MODE_LOWER, k, CUDA_R_64F, G, k, &vl, &vu, k - h + 1, k, &found,
                                   CUDA_R_64F, lam, CUDA_R_64F, work.raw(), dev_bytes, host_work.data(), host_bytes,
                                   info_d));
  int info = 0;
  CUDA_CHECK(cudaMemcpyAsync(&info, info_d, sizeof(int), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  if (info != 0 || found != h)
    throw Error("cuSOLVER syevdx failed (info " + std::to_string(info) + ", " + std::to_string(found) + " of " +
                    std::to_string(h) + " eigenpairs) on the Gram matrix of a " + std::to_string(m) + "x" +
                    std::to_string(n) + " matrix",
                ErrorKind::Runtime);
  if (wide)  // P [n, h] = X U = M^T U = V S
    CUBLAS_CHECK(cublasDgemm(hd.blas, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(h), int(m), &one, X, int(n), G, int(m),
                             &zero, P, int(n)));
  else  // P [m, h] = X^T V = M V = U S
    CUBLAS_CHECK(cublasDgemm(hd.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(h), int(n), &one, X, int(n), G, int(n),
                             &zero, P, int(m)));
  // b [m, r] = U sqrt(S): from the eigenvectors (wide) or from U S = P (tall);
  // a [r, n] = sqrt(S) Vh: from V S = P (wide) or from the eigenvectors (tall).
  factor_kernel<<<grid_for(m * r, 256), 256, 0, s>>>(b.f32(), m, r, false, wide ? G : P, m, lam, h, wide);
  CUDA_CHECK_LAUNCH("low_rank_svd b");
  factor_kernel<<<grid_for(r * n, 256), 256, 0, s>>>(a.f32(), r, n, true, wide ? P : G, n, lam, h, !wide);
  CUDA_CHECK_LAUNCH("low_rank_svd a");
  sign_flip_kernel<<<unsigned(h), 256, 0, s>>>(b.f32(), m, a.f32(), n, r);
  CUDA_CHECK_LAUNCH("low_rank_svd signs");
}

}  // namespace qtrain::cuda
