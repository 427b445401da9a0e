#include "models/gguf_block_weight.h"

#include <cstring>

#include "kernels/gguf_dequant.h"

namespace qtrain {

namespace {

const GgufPacked& gguf_packed(const PackedTensor& p) {
  QT_CHECK(p.format == "gguf" && p.impl && p.shape.size() == 2, "GgufBlockWeight: not a 2-D GGUF packed tensor");
  return *static_cast<const GgufPacked*>(p.impl.get());
}

Shape weight_shape(const GgufWeightSource& src, const std::string& name) {
  Shape s = src.shape(name);
  if (s.size() != 2) throw Error(src.path() + ": '" + name + "' is not a 2-D weight");
  return s;
}

}  // namespace

GgufBlockWeight::GgufBlockWeight(const GgufWeightSource& src, const std::string& name)
    : DequantWeight(weight_shape(src, name)[0], weight_shape(src, name)[1]),
      file_(src.shared_file()),
      raw_(src.raw(name)) {}

GgufBlockWeight::GgufBlockWeight(const PackedTensor& p)
    : DequantWeight(p.shape.at(0), p.shape.at(1)), file_(gguf_packed(p).file), raw_(gguf_packed(p).raw) {}

void GgufBlockWeight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
#pragma omp parallel for schedule(static) if ((r1 - r0) * raw_.cols >= (int64_t(1) << 15))
  for (int64_t r = r0; r < r1; ++r) dequantize_row(raw_.type, raw_.row(r), out + (r - r0) * raw_.cols, raw_.cols);
}

const Tensor& GgufBlockWeight::device_blocks() const {
  if (!dev_blocks_.defined()) {
    // One host copy in HF row order (undoing llama.cpp's Q/K permutation), uploaded once.
    Tensor host = Tensor::empty({int64_t(raw_.rows * raw_.row_bytes)}, DType::U8);
    auto* dst = static_cast<uint8_t*>(host.raw());
    for (int64_t r = 0; r < raw_.rows; ++r) std::memcpy(dst + size_t(r) * raw_.row_bytes, raw_.row(r), raw_.row_bytes);
    dev_blocks_ = host.to(Device::CUDA);
  }
  return dev_blocks_;
}

void GgufBlockWeight::dequantize_on_device(Tensor out) const { dequantize_gguf(out, device_blocks(), raw_.type); }

void GgufBlockWeight::forward(Tensor y, Tensor x) const {
  if (gemv_gguf_supported(x, raw_.type)) return matmul_gguf(y, x, device_blocks(), raw_.type);
  DequantWeight::forward(y, x);
}

}  // namespace qtrain
