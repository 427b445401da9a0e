#include "models/lowra_weight.h"

#include <limits>

#include "kernels/lowra_dequant.h"

namespace qtrain {

namespace {

quant::LowraPacked quantize(const Tensor& w, const std::vector<uint8_t>& bits, const std::vector<float>& lut) {
  QT_CHECK(w.ndim() == 2 && w.dtype() == DType::F32 && !w.is_cuda(), "LowraWeight: weight must be a 2-D F32 CPU tensor");
  QT_CHECK(int64_t(bits.size()) == w.size(0) && int64_t(lut.size()) == w.size(0) * quant::kLowraLut,
           "LowraWeight: one width and one 16-slot table per output channel");
  if (w.size(1) % quant::kLowraGroup)
    throw Error("lowra: a [" + std::to_string(w.size(0)) + ", " + std::to_string(w.size(1)) +
                "] weight's rows are not whole 64-weight blocks");
  return quant::quantize_lowra(w.f32(), w.size(0), w.size(1), bits.data(), lut.data());
}

}  // namespace

LowraWeight::LowraWeight(const Tensor& w_f32, const std::vector<uint8_t>& bits, const std::vector<float>& lut)
    : DequantWeight(w_f32.size(0), w_f32.size(1)), p_(quantize(w_f32, bits, lut)) {}

void LowraWeight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  quant::dequantize_lowra_rows(p_, r0, r1, out);
}

void LowraWeight::forward(Tensor y, Tensor x) const {
  if (x.is_cuda() && x.dtype() == DType::BF16 && x.numel() / in_features() <= kLowraMatvecRows &&
      reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0) {
    upload();
    return lowra_matvec(y, x, dev_codes_, dev_offset_, dev_bits_, dev_lut_, dev_absmax_);
  }
  DequantWeight::forward(y, x);
}

void LowraWeight::upload() const {
  if (!dev_codes_.defined()) {
    // I32 offsets on the GPU: one matrix's codes are far below 2 GiB (a 16k x 64k
    // weight at 4 bits is 512 MiB)
    QT_CHECK(p_.codes.size() < size_t(std::numeric_limits<int32_t>::max()), "LowraWeight: codes over 2 GiB");
    std::vector<int32_t> off(p_.row_offset.begin(), p_.row_offset.begin() + p_.rows);
    dev_codes_ = upload_1d(p_.codes, DType::U8);
    dev_offset_ = upload_1d(off, DType::I32);
    dev_bits_ = upload_1d(p_.bits, DType::U8);
    dev_lut_ = upload_1d(p_.lut, DType::F32);
    dev_absmax_ = upload_1d(p_.absmax, DType::F32);
  }
}

void LowraWeight::dequantize_on_device(Tensor out) const {
  upload();
  dequantize_lowra(out, dev_codes_, dev_offset_, dev_bits_, dev_lut_, dev_absmax_);
}

}  // namespace qtrain
