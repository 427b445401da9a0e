#include "models/hqq_weight.h"

#include "kernels/hqq_dequant.h"

namespace qtrain {

namespace {

quant::HqqPacked quantize(const Tensor& w, int bits) {
  QT_CHECK(w.ndim() == 2 && w.dtype() == DType::F32 && !w.is_cuda(), "HqqWeight: weight must be a 2-D F32 CPU tensor");
  if ((w.size(0) * w.size(1)) % quant::kHqqGroup || w.size(1) % (8 / bits))
    throw Error("hqq-lora: a [" + std::to_string(w.size(0)) + ", " + std::to_string(w.size(1)) +
                "] weight is not a whole number of 64-weight groups");
  return quant::quantize_hqq(w.f32(), w.size(0), w.size(1), bits);
}

}  // namespace

HqqWeight::HqqWeight(const Tensor& w_f32, int bits)
    : DequantWeight(w_f32.size(0), w_f32.size(1)), p_(quantize(w_f32, bits)) {}

void HqqWeight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  quant::dequantize_hqq_rows(p_, r0, r1, out);
}

void HqqWeight::dequantize_on_device(Tensor out) const {
  if (!dev_codes_.defined()) {
    dev_codes_ = upload_1d(p_.codes, DType::U8);
    dev_scale_ = upload_1d(p_.scale, DType::F32);
    dev_zero_ = upload_1d(p_.zero, DType::F32);
  }
  dequantize_hqq(out, dev_codes_, dev_scale_, dev_zero_, p_.bits);
}

}  // namespace qtrain
