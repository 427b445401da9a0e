#include "models/quant_weight.h"

#include <algorithm>
#include <cstring>

#include "kernels/matmul.h"

namespace qtrain {

namespace {
Tensor host_f32(const Tensor& w) {
  return w.device() == Device::CPU && w.dtype() == DType::F32 ? w : w.to(Device::CPU, DType::F32);
}
}  // namespace

int64_t DequantWeight::chunk_rows() const { return std::clamp<int64_t>(kChunkElems / in_, 1, out_); }

Tensor DequantWeight::dense_f32() const {
  Tensor w = Tensor::empty({out_, in_}, DType::F32);
  dequantize_rows(0, out_, w.f32());
  return w;
}

Tensor DequantWeight::dense_on_device() const {
  Tensor w = Tensor::empty({out_, in_}, DType::BF16, Device::CUDA);
  dequantize_on_device(w);
  return w;
}

void DequantWeight::forward(Tensor y, Tensor x) const {
  if (x.is_cuda()) {
    gemm(y, x, dense_on_device(), false, true);
    return;
  }
  int64_t n = x.numel() / in_, step = chunk_rows();
  if (step == out_) {
    gemm(y, x, dense_f32(), false, true);
    return;
  }
  Tensor wc = Tensor::empty({step, in_}, DType::F32), yc = Tensor::empty({n, step}, DType::F32);
  float* yp = y.f32();
  for (int64_t r0 = 0; r0 < out_; r0 += step) {
    int64_t r = std::min(step, out_ - r0);
    dequantize_rows(r0, r0 + r, wc.f32());
    Tensor yv = yc.flat(0, n * r).view({n, r});
    gemm(yv, x.view({n, in_}), wc.rows(0, r), false, true);
    for (int64_t i = 0; i < n; ++i) std::memcpy(yp + i * out_ + r0, yv.f32() + i * r, size_t(r) * 4);
  }
}

void DequantWeight::backward_input(Tensor dx, Tensor dy, float beta) const {
  if (dy.is_cuda()) {
    gemm(dx, dy, dense_on_device(), false, false, 1.f, beta);
    return;
  }
  int64_t n = dy.numel() / out_, step = chunk_rows();
  if (step == out_) {
    gemm(dx, dy, dense_f32(), false, false, 1.f, beta);
    return;
  }
  Tensor wc = Tensor::empty({step, in_}, DType::F32), dyc = Tensor::empty({n, step}, DType::F32);
  const float* dp = dy.f32();
  for (int64_t r0 = 0; r0 < out_; r0 += step) {
    int64_t r = std::min(step, out_ - r0);
    dequantize_rows(r0, r0 + r, wc.f32());
    Tensor dv = dyc.flat(0, n * r).view({n, r});
    for (int64_t i = 0; i < n; ++i) std::memcpy(dv.f32() + i * r, dp + i * out_ + r0, size_t(r) * 4);
    gemm(dx.view({n, in_}), dv, wc.rows(0, r), false, false, 1.f, r0 == 0 ? beta : 1.f);
  }
}

Block4Weight::Block4Weight(const Tensor& w, quant::Code4 code, bool double_quant)
    : DequantWeight(w.size(0), w.size(1)) {
  // Loaders hand over host F32 already: no copy then (a 70B base is 280 GB of F32 in passing).
  const Tensor h = host_f32(w);
  p_ = quant::quantize_4bit(h.f32(), h.numel(), code, double_quant);
  absmax_ = quant::decoded_absmax(p_.view());
}

const Quant4Tensor& Block4Weight::on_device() const {
  if (!dev_.packed.defined())
    dev_ = Quant4Tensor::from_packed(p_, out_features(), in_features()).to(Device::CUDA);
  return dev_;
}

void Block4Weight::dequantize_on_device(Tensor out) const { dequantize_rows_4bit(out, on_device(), 0); }

void Block4Weight::forward(Tensor y, Tensor x) const {
  // Up to 16 rows (decode): one tensor-core pass over the packed weight, no
  // BF16 copy of W; at 16 rows it measured 2-3x faster than dequantize +
  // cuBLASLt on an H200 (bench/results/quant_kernels_NVIDIA-H200_2026-12-01.json).
  if (const Quant4Tensor* q = as_4bit_gemv(x)) return matmul_4bit(y, x, *q);
  DequantWeight::forward(y, x);
}

const Quant4Tensor* Block4Weight::as_4bit_gemv(const Tensor& x) const {
  return x.is_cuda() && gemv_4bit_supported(x, on_device()) ? &on_device() : nullptr;
}

void Block4Weight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  const quant::Nf4View v = quant::with_decoded_absmax(p_.view(out_features(), in_features()), absmax_);
  quant::dequantize_4bit(v, r0 * in_features(), r1 * in_features(), out);
}

Int8Weight::Int8Weight(const Tensor& w, float threshold) : DequantWeight(w.size(0), w.size(1)), threshold_(threshold) {
  const Tensor h = host_f32(w);
  p_ = quant::quantize_int8_rows(h.f32(), w.size(0), w.size(1));
}

void Int8Weight::forward(Tensor y, Tensor x) const {
  if (x.is_cuda()) return int8_matmul(y, x, on_device(), threshold_);
  quant::int8_matmul_decomposed(p_, x.f32(), x.numel() / in_features(), y.f32(), threshold_);
}

const Int8Tensor& Int8Weight::on_device() const {
  if (!dev_.q.defined()) dev_ = Int8Tensor::from_rows(p_).to(Device::CUDA);
  return dev_;
}

void Int8Weight::dequantize_on_device(Tensor out) const { dequantize_rows_int8(out, on_device(), 0); }

void Int8Weight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  quant::dequantize_int8_rows(p_, r0, r1, out);
}

}  // namespace qtrain
