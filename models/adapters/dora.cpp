#include "models/adapters/dora.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/column_scale.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "models/model.h"

namespace qtrain {

namespace {
// Inputs of at most this many rows without gradients (decode steps) reuse the
// scale of the last full forward instead of one base product of r rows each.
constexpr int64_t kDecodeRows = 64;
}  // namespace

void DoraAdapter::declare(ParamSet& ps, const std::string& module, int layer) {
  LoraAdapter::declare(ps, module, layer);
  im_ = ps.declare(module + ".lora_magnitude_vector", {out_}, true, layer);
}

void DoraAdapter::bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight& base) {
  LoraAdapter::bind_and_init(ps, seed, base);
  m_ = &ps[im_];
  Tensor w = base.dense_f32();
  Tensor wn2 = Tensor::empty({out_}, DType::F32), m = Tensor::empty({out_}, DType::F32);
  // Rows are independent (each summed in order, so the thread count changes nothing); on one core
  // these norms were several seconds of a LLaMA-7B DoRA setup.
#pragma omp parallel for schedule(static) if (out_ * in_ >= (int64_t(1) << 16))
  for (int64_t i = 0; i < out_; ++i) {
    double s = 0;
    for (int64_t j = 0; j < in_; ++j) s += double(w.f32()[i * in_ + j]) * w.f32()[i * in_ + j];
    wn2.f32()[i] = float(s);
    m.f32()[i] = float(std::sqrt(s));  // B = 0: ||W + s B A|| = ||W||
  }
  const Device dev = m_->value.device();
  wn2_ = wn2.to(dev);
  m_->value.copy_from(m);
  norm_ = Tensor::empty({out_}, DType::F32, dev);
  scale_ = Tensor::empty({out_}, DType::F32, dev);
  stale_ = true;
}

void DoraAdapter::refresh_scale(const BaseWeight& base, DType act) {
  const int r = opt_.r;
  const Device dev = wn2_.device();
  Tensor A = a_->value, B = b_->value;
  Tensor Aact = A;
  if (act != DType::F32) {
    Aact = Tensor::empty(A.shape(), act, dev);
    convert(Aact, A);
  }
  // A W^T with W itself: a base that transforms its input inside the product
  // (BitNet's SubLN and 8-bit activations) would give a P whose expansion of
  // ||W + s B A||^2 can go negative (NaN on a ternary base)
  Tensor P = Tensor::empty({r, out_}, act, dev);
  base.forward_weight(P, Aact);
  Tensor G = Tensor::empty({r, r}, DType::F32, dev), Q = Tensor::empty({r, out_}, DType::F32, dev);
  gemm(G, A, A, false, true);
  gemm(Q, G, B, false, true);  // (A A^T) B^T
  dora_scale(scale_, norm_, m_->value, wn2_, B, P, Q, opt_.scale());
  stale_ = false;
}

void DoraAdapter::forward(Tensor y, Tensor x, const BaseWeight& base, bool train, uint64_t dropout_seed) {
  const int64_t n = x.numel() / in_;
  // The recompute of a checkpointed layer reuses the scale of the step's first
  // forward (released state, no update since): one dequantized base product
  // of r rows per module and step fewer.
  const bool recompute = train && reuse_scale_;
  reuse_scale_ = false;
  if (!recompute && (train || stale_ || n > kDecodeRows)) refresh_scale(base, x.dtype());
  Tensor y2 = y.view({n, out_});
  Tensor h = save_input(x.view({n, in_}), train, dropout_seed);  // drop(x) A^T
  dropped_ = xd_.defined();
  if (!dropped_) {
    gemm(y2, h, b_->value, false, true, opt_.scale(), 1.f);  // y = x W^T + s x A^T B^T
    pre_ = train ? Tensor::empty(y2.shape(), y2.dtype(), y2.device()) : Tensor();
    mul_cols(y2, y2, scale_, 0.f, pre_);  // pre_ keeps the unscaled output in the same pass
    return;
  }
  // peft with dropout: y += (m/n) (drop(x) W^T + s drop(x) A^T B^T) - drop(x) W^T
  Tensor yd = Tensor::empty({n, out_}, y.dtype(), y.device());
  base.forward(yd, xd_);
  pre_ = yd.clone();
  gemm(pre_, h, b_->value, false, true, opt_.scale(), 1.f);
  Tensor t = Tensor::empty({n, out_}, y.dtype(), y.device());
  mul_cols(t, pre_, scale_);
  add_inplace(y2, t);
  axpy(y2, -1.f, yd);
}

Tensor DoraAdapter::base_grad(Tensor dy) {
  dyg_ = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  mul_cols(dyg_, dy, scale_);
  return dropped_ ? dy : dyg_;  // with dropout the base's own x W^T stays unscaled
}

void DoraAdapter::backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight& base) {
  const int64_t n = x.numel() / in_;
  col_dot(m_->grad, dy.view({n, out_}), pre_, norm_);  // dy/dm = pre / norm (the norm is detached)
  lora_backward(dx, dyg_, x);                        // h_ is released here; xd_ and mask_ stay
  if (dropped_) {
    // the (m/n - 1) drop(x) W^T term: dx += drop'(((m/n - 1) dy) W)
    Tensor t = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
    mul_cols(t, dy, scale_, -1.f);
    Tensor dxd = Tensor::empty({n, in_}, dx.dtype(), dx.device());
    base.backward_input(dxd, t.view({n, out_}), 0.f);
    dropout_backward(dxd, dxd, mask_, opt_.dropout);
    add_inplace(dx, dxd);
  }
  pre_ = dyg_ = Tensor();
  stale_ = true;  // an optimizer step follows
}

void DoraAdapter::write_peft_config(nlohmann::json& cfg, const std::string& module) const {
  LoraAdapter::write_peft_config(cfg, module);
  cfg["use_dora"] = true;
}

void DoraAdapter::load(const std::function<Tensor(const std::string& suffix, const Shape& shape)>& get) {
  LoraAdapter::load(get);
  stale_ = true;
}

std::vector<std::pair<std::string, Tensor>> DoraAdapter::tensors() const {
  auto t = LoraAdapter::tensors();
  t.push_back({"lora_magnitude_vector", m_->value});
  return t;
}

Tensor DoraAdapter::delta_f32(const BaseWeight& base) const {
  // peft's merge: W' = m / ||W + s B A|| * (W + s B A); the delta is W' - W.
  Tensor w = base.dense_f32();
  Tensor d = LoraAdapter::delta_f32(base);  // s B A
  Tensor m = m_->value.to(Device::CPU, DType::F32);
  float *pw = w.f32(), *pd = d.f32();
  for (int64_t i = 0; i < out_; ++i) {
    double nn = 0;
    for (int64_t j = 0; j < in_; ++j) {
      const double v = double(pw[i * in_ + j]) + pd[i * in_ + j];
      nn += v * v;
    }
    const float g = m.f32()[i] / float(std::sqrt(nn));
    for (int64_t j = 0; j < in_; ++j) pd[i * in_ + j] = g * (pw[i * in_ + j] + pd[i * in_ + j]) - pw[i * in_ + j];
  }
  return d;
}

}  // namespace qtrain

QT_REGISTER_ADAPTER(dora, {.name = "dora",
                           .help = "DoRA: LoRA plus a magnitude per output feature, W' = m (W + s B A) / ||W + s B A||",
                           .make = [](const qtrain::AdapterRequest& r) -> std::unique_ptr<qtrain::Adapter> {
                             return std::make_unique<qtrain::DoraAdapter>(r.in, r.out, qtrain::lora_options_for(r.opt.lora, r.module));
                           }});
