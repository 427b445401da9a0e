// Pointwise ops, column blocks, grad-norm reduction and hash-RNG dropout.
// Each public op checks its operands (sizes, devices, column windows, p)
// before the dispatch; the CUDA twins and the F32 loops check only dtypes.
#include "kernels/elementwise.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

void add_inplace(Tensor y, Tensor x) {
  check_numel_like(x, y, "add_inplace x");
  QT_DISPATCH_CUDA(y, add_inplace, y, x);
  axpy(y, 1.f, x);
}

void axpy(Tensor y, float a, Tensor x) {
  check_numel_like(x, y, "axpy x");
  QT_DISPATCH_CUDA(y, axpy, y, a, x);
  cpu::check_f32(y, "axpy y");
  cpu::check_f32(x, "axpy x");
  float* py = y.f32();
  const float* px = x.f32();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) py[i] += a * px[i];
}

void scale_inplace(Tensor y, float a) {
  QT_CHECK(y.defined(), "scale_inplace: undefined tensor");
  QT_DISPATCH_CUDA(y, scale_inplace, y, a);
  cpu::check_f32(y, "scale_inplace y");
  float* py = y.f32();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) py[i] *= a;
}

void convert(Tensor dst, Tensor src) {
  check_numel_like(src, dst, "convert src");
  QT_DISPATCH_CUDA(dst, convert, dst, src);
  dst.copy_from(src);  // the host path converts between every dtype pair (round to nearest even)
}

double sum_squares(Tensor x) {
  QT_CHECK(x.defined(), "sum_squares: undefined tensor");
  QT_DISPATCH_CUDA(x, sum_squares, x);
  cpu::check_f32(x, "sum_squares x");
  const float* px = x.f32();
  const int64_t n = x.numel();
  // Fixed blocks summed in a fixed order: the same bits for any thread count.
  constexpr int64_t kBlock = 4096;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(nblocks));
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    double s = 0;
    for (int64_t i = blk * kBlock; i < std::min(n, (blk + 1) * kBlock); ++i) s += double(px[i]) * px[i];
    partial[size_t(blk)] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

namespace {
// narrow [N,w] and wide [N,W] on one device: the column window [off, off+w)
// of wide fits. Both backends need this, so it runs before the dispatch.
void check_cols(const Tensor& narrow, const Tensor& wide, int64_t off, const char* what, RowsCols* nm, RowsCols* wm) {
  *nm = check_rows_cols(narrow, what);
  *wm = check_rows_cols(wide, what);
  check_on(narrow, wide, what);
  QT_CHECK(nm->rows == wm->rows && off >= 0 && off + nm->cols <= wm->cols,
           std::string(what) + ": narrow" + shape_str(narrow.shape()) + " does not fit wide" +
               shape_str(wide.shape()) + " at column " + std::to_string(off));
}
}  // namespace

void copy_cols(Tensor out, Tensor in, int64_t col_offset) {
  RowsCols om, im;
  check_cols(out, in, col_offset, "copy_cols", &om, &im);
  QT_DISPATCH_CUDA(out, copy_cols, out, in, col_offset);
  cpu::check_f32(out, "copy_cols out");
  cpu::check_f32(in, "copy_cols in");
  float* po = out.f32();
  const float* pi = in.f32();
#pragma omp parallel for if (om.rows * om.cols >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < om.rows; ++n) std::copy_n(pi + n * im.cols + col_offset, om.cols, po + n * om.cols);
}

void add_cols(Tensor out, Tensor in, int64_t col_offset) {
  // Here `out` is the wide [N,W] matrix and `in` the [N,w] block.
  RowsCols im, om;
  check_cols(in, out, col_offset, "add_cols", &im, &om);
  QT_DISPATCH_CUDA(out, add_cols, out, in, col_offset);
  cpu::check_f32(out, "add_cols out");
  cpu::check_f32(in, "add_cols in");
  float* po = out.f32();
  const float* pi = in.f32();
#pragma omp parallel for if (om.rows * om.cols >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < om.rows; ++n) {
    float* o = po + n * om.cols + col_offset;
    const float* r = pi + n * im.cols;
    for (int64_t j = 0; j < im.cols; ++j) o[j] += r[j];
  }
}

// SplitMix64's output function (Steele, Lea & Flood 2014).
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Counter-based: element `index` gets the (index+1)-th output of a SplitMix64
// stream whose state starts at mix64(seed), i.e.
//   u = (mix64(mix64(seed) + (index + 1) * 0x9E3779B97F4A7C15) >> 40) / 2^24
// (all arithmetic mod 2^64). 24 bits make the float exact, so a CUDA kernel
// computing the same integer ops reproduces the mask bit for bit.
float hash_uniform(uint64_t seed, uint64_t index) {
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  const uint64_t z = mix64(mix64(seed) + (index + 1) * kGolden);
  return float(z >> 40) * (1.f / 16777216.f);
}

// Both backends: y and the U8 mask hold x's element count on x's device; p in [0, 1).
static void check_dropout(const Tensor& y, const Tensor& mask, const Tensor& x, float p, const char* what) {
  check_numel_like(y, x, what);
  check_numel_like(mask, x, (std::string(what) + " mask").c_str());
  QT_CHECK(mask.dtype() == DType::U8, std::string(what) + " mask: expected U8, got " + dtype_name(mask.dtype()));
  QT_CHECK(p >= 0.f && p < 1.f, std::string(what) + ": p must be in [0, 1), got " + std::to_string(p));
}

void dropout_forward(Tensor out, Tensor mask, Tensor x, float p, uint64_t seed, uint64_t offset) {
  check_dropout(out, mask, x, p, "dropout_forward");
  QT_DISPATCH_CUDA(x, dropout_forward, out, mask, x, p, seed, offset);
  cpu::check_f32(x, "dropout x");
  cpu::check_f32(out, "dropout out");
  const float* px = x.f32();
  float* po = out.f32();
  uint8_t* pm = mask.data<uint8_t>();
  const int64_t n = x.numel();
  const float scale = 1.f / (1.f - p);
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = p == 0.f || hash_uniform(seed, offset + uint64_t(i)) >= p;
    pm[i] = keep ? 1 : 0;
    po[i] = keep ? (p == 0.f ? px[i] : px[i] * scale) : 0.f;
  }
}

void dropout_backward(Tensor dx, Tensor dout, Tensor mask, float p) {
  check_dropout(dx, mask, dout, p, "dropout_backward");
  QT_DISPATCH_CUDA(dout, dropout_backward, dx, dout, mask, p);
  cpu::check_f32(dx, "dropout dx");
  cpu::check_f32(dout, "dropout dout");
  const float* pd = dout.f32();
  const uint8_t* pm = mask.data<uint8_t>();
  float* pdx = dx.f32();
  const int64_t n = dout.numel();
  const float scale = 1.f / (1.f - p);
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) pdx[i] = pm[i] ? pd[i] * scale : 0.f;
}

}  // namespace qtrain
