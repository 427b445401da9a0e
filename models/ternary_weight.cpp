#include "models/ternary_weight.h"

#include <cmath>

#include "kernels/matmul.h"

namespace qtrain {

TernaryWeight::TernaryWeight(quant::PackedTernary p, bool subln)
    : w_(TernaryTensor::from_packed(p)), subln_(subln) {}

std::unique_ptr<TernaryWeight> TernaryWeight::from_source(const WeightSource& src, const std::string& name, int64_t out,
                                                          int64_t in) {
  if (!src.has(name + ".ternary_scale")) return nullptr;
  const auto bad = [&](const std::string& why) {
    return Error(src.path() + ": tensor '" + name + "' (ternary weight): " + why);
  };
  if (!src.has(name + ".ternary_subln")) throw bad("missing '" + name + ".ternary_subln'");
  Tensor c = src.load_f32(name), s = src.load_f32(name + ".ternary_scale"), n = src.load_f32(name + ".ternary_subln");
  const int64_t rb = quant::PackedTernary::row_bytes(in);
  if (c.shape() != Shape{out, rb}) throw bad("codes " + shape_str(c.shape()) + ", expected [" + std::to_string(out) + ", " + std::to_string(rb) + "]");
  if (s.numel() != 1 || !(s.f32()[0] > 0.f) || !std::isfinite(s.f32()[0])) throw bad("ternary_scale must be one positive number");
  quant::PackedTernary p;
  p.rows = out, p.cols = in, p.scale = s.f32()[0];
  p.codes.resize(size_t(out * rb));
  for (int64_t i = 0; i < out * rb; ++i) {
    const float v = c.f32()[i];
    if (!(v >= 0.f && v <= 255.f)) throw bad("codes are not bytes");
    p.codes[size_t(i)] = uint8_t(v);
    for (int k = 0; k < 4; ++k)
      if (((p.codes[size_t(i)] >> (2 * k)) & 3) == 3) throw bad("code 3 is not a ternary level (byte " + std::to_string(i) + ")");
  }
  return std::make_unique<TernaryWeight>(std::move(p), n.numel() == 1 && n.f32()[0] != 0.f);
}

const TernaryTensor& TernaryWeight::on(Device d) const {
  if (d == Device::CPU) return w_;
  if (!dev_.codes.defined()) dev_ = w_.to(d);
  return dev_;
}

void TernaryWeight::forward(Tensor y, Tensor x) const {
  const Q8Rows act = Q8Rows::empty(x.numel() / w_.cols, w_.cols, x.device());
  quantize_act_q8(act, x.view({act.rows(), w_.cols}), subln_);
  forward_q8(y, act);
}

void TernaryWeight::forward_q8(Tensor y, const Q8Rows& act) const { ternary_matmul_q8(y, act, on(act.q.device())); }

void TernaryWeight::forward_weight(Tensor y, Tensor x) const {
  Tensor w = Tensor::empty({w_.rows, w_.cols}, x.dtype(), x.device());
  unpack_ternary(w, on(x.device()));
  gemm(y, x, w, false, true);
}

void TernaryWeight::backward_input(Tensor, Tensor, float) const {
  QT_CHECK(false, "ternary base: the input gradient needs the layer input (backward_input_from)");
}

void TernaryWeight::backward_input_from(Tensor dx, Tensor dy, Tensor x, float beta) const {
  // scale * T in the compute dtype, one matrix at a time, as a 4-bit base's products are
  Tensor w = Tensor::empty({w_.rows, w_.cols}, dy.dtype(), dy.device());
  unpack_ternary(w, on(dy.device()));
  if (!subln_) return gemm(dx, dy, w, false, false, 1.f, beta);  // Q8 is straight-through
  Tensor dxn = Tensor::empty({dy.numel() / w_.rows, w_.cols}, dy.dtype(), dy.device());
  gemm(dxn, dy, w, false, false);
  norm_.backward(dx, dxn, x, 1.f, beta);
}

Tensor TernaryWeight::dense_f32() const {
  Tensor w = Tensor::empty({w_.rows, w_.cols}, DType::F32);
  unpack_ternary(w, w_);
  return w;
}

}  // namespace qtrain
