#include "models/gguf_block_weight.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gguf_dequant.h"
#include "kernels/matmul.h"

namespace qtrain {

namespace {
constexpr int64_t kRowTile = 64;  // rows dequantized together in backward_input
}

GgufBlockWeight::GgufBlockWeight(const GgufWeightSource& src, const std::string& name)
    : file_(src.shared_file()), raw_(src.raw(name)) {
  if (src.shape(name).size() != 2) throw Error(src.path() + ": '" + name + "' is not a 2-D weight");
}

GgufBlockWeight::GgufBlockWeight(const PackedTensor& p) {
  QT_CHECK(p.format == "gguf" && p.impl, "GgufBlockWeight: not a GGUF packed tensor");
  const auto& g = *static_cast<const GgufPacked*>(p.impl.get());
  file_ = g.file;
  raw_ = g.raw;
}

Tensor GgufBlockWeight::dense_on_device() const {
  if (!dev_blocks_.defined()) {
    // One host copy in HF row order (undoing llama.cpp's Q/K permutation), uploaded once.
    Tensor host = Tensor::empty({int64_t(raw_.rows * raw_.row_bytes)}, DType::U8);
    auto* dst = static_cast<uint8_t*>(host.raw());
    for (int64_t r = 0; r < raw_.rows; ++r) std::memcpy(dst + size_t(r) * raw_.row_bytes, raw_.row(r), raw_.row_bytes);
    dev_blocks_ = host.to(Device::CUDA);
  }
  Tensor w = Tensor::empty({raw_.rows, raw_.cols}, DType::BF16, Device::CUDA);
  dequantize_gguf(w, dev_blocks_, raw_.type);
  return w;
}

void GgufBlockWeight::forward(Tensor y, Tensor x) const {
  if (x.is_cuda()) return gemm(y, x, dense_on_device(), false, true);
  const int64_t in = raw_.cols, out = raw_.rows, n = x.numel() / in;
  check_shape(y, {n, out}, "GgufBlockWeight::forward y");
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel
  {
    std::vector<float> w(static_cast<size_t>(in));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      dequantize_row(raw_.type, raw_.row(o), w.data(), in);
      for (int64_t r = 0; r < n; ++r) {
        const float* xr = xp + r * in;
        float acc = 0.f;
        for (int64_t k = 0; k < in; ++k) acc += xr[k] * w[size_t(k)];
        yp[r * out + o] = acc;
      }
    }
  }
}

void GgufBlockWeight::backward_input(Tensor dx, Tensor dy, float beta) const {
  if (dy.is_cuda()) return gemm(dx, dy, dense_on_device(), false, false, 1.f, beta);
  const int64_t in = raw_.cols, out = raw_.rows, n = dy.numel() / out;
  check_shape(dx, {n, in}, "GgufBlockWeight::backward_input dx");
  const float* dyp = dy.f32();
  float* dxp = dx.f32();
  if (beta == 0.f) std::fill(dxp, dxp + n * in, 0.f);
  else if (beta != 1.f) for (int64_t i = 0; i < n * in; ++i) dxp[i] *= beta;
  std::vector<float> tile(static_cast<size_t>(kRowTile * in));
  for (int64_t o0 = 0; o0 < out; o0 += kRowTile) {
    const int64_t rows = std::min(kRowTile, out - o0);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < rows; ++j) dequantize_row(raw_.type, raw_.row(o0 + j), tile.data() + j * in, in);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      float* dxr = dxp + r * in;
      for (int64_t j = 0; j < rows; ++j) {
        const float g = dyp[r * out + o0 + j];
        const float* w = tile.data() + j * in;
        for (int64_t k = 0; k < in; ++k) dxr[k] += g * w[k];
      }
    }
  }
}

Tensor GgufBlockWeight::dense_f32() const {
  Tensor w = Tensor::empty({raw_.rows, raw_.cols}, DType::F32);
  for (int64_t o = 0; o < raw_.rows; ++o) dequantize_row(raw_.type, raw_.row(o), w.f32() + o * raw_.cols, raw_.cols);
  return w;
}

}  // namespace qtrain
