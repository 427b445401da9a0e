#include "models/adapters/lora.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <typeinfo>

#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "models/model.h"

namespace qtrain {

LoraAdapter::LoraAdapter(int64_t in, int64_t out, LoraOptions opt) : in_(in), out_(out), opt_(opt) {
  if (opt_.r <= 0 || opt_.alpha <= 0.f) throw Error("--lora-r and --lora-alpha must be positive");
  if (opt_.dropout < 0.f || opt_.dropout >= 1.f) throw Error("--lora-dropout must be in [0, 1)");
}

float LoraOptions::scale() const { return rslora ? alpha / std::sqrt(float(r)) : alpha / float(r); }

void LoraAdapter::declare(ParamSet& ps, const std::string& module, int layer) {
  ia_ = ps.declare(module + ".lora_A.weight", {opt_.r, in_}, true, layer);
  ib_ = ps.declare(module + ".lora_B.weight", {out_, opt_.r}, true, layer);
}

void LoraAdapter::bind_and_init(ParamSet& ps, uint64_t seed, const BaseWeight&) {
  a_ = &ps[ia_];
  b_ = &ps[ib_];
  // kaiming_uniform_(a=sqrt(5)) on [r, in] gives U(-1/sqrt(in), 1/sqrt(in)).
  std::mt19937_64 rng(seed);
  float bound = 1.f / std::sqrt(float(in_));
  std::uniform_real_distribution<float> u(-bound, bound);
  std::vector<float> a(size_t(opt_.r * in_));
  for (auto& v : a) v = u(rng);
  a_->value.copy_from(Tensor::wrap(a.data(), a_->shape, DType::F32));
  b_->value.zero_();
}

void LoraAdapter::init_low_rank(const Tensor& b, const Tensor& a) {
  b_->value.copy_from(b);
  a_->value.copy_from(a);
}

Tensor LoraAdapter::save_input(Tensor x2, bool train, uint64_t dropout_seed) {
  Tensor xin = x2;
  if (train && opt_.dropout > 0.f) {
    xd_ = Tensor::empty(x2.shape(), x2.dtype(), x2.device());
    mask_ = Tensor::empty({x2.numel()}, DType::U8, x2.device());
    dropout_forward(xd_, mask_, x2, opt_.dropout, dropout_seed, 0);
    xin = xd_;
  } else {
    xd_ = Tensor();
  }
  h_ = Tensor::empty({x2.size(0), opt_.r}, x2.dtype(), x2.device());
  gemm(h_, xin, a_->value, false, true);
  return h_;
}

void LoraAdapter::forward(Tensor y, Tensor x, const BaseWeight&, bool train, uint64_t dropout_seed) {
  int64_t n = x.numel() / in_;
  Tensor h = save_input(x.view({n, in_}), train, dropout_seed);
  gemm(y.view({n, out_}), h, b_->value, false, true, opt_.scale(), 1.f);
}

bool LoraAdapter::plain_low_rank(Tensor* a, Tensor* b, float* scale) const {
  // Only LoRA itself: DoRA, Q-BLoRA and QA-BLoRA derive from it and change its forward.
  if (typeid(*this) != typeid(LoraAdapter)) return false;
  *a = a_->value, *b = b_->value, *scale = opt_.scale();
  return true;
}

bool LoraAdapter::save_for_backward(Tensor x, const BaseWeight&, bool train, uint64_t dropout_seed) {
  save_input(x.view({x.numel() / in_, in_}), train, dropout_seed);
  return true;
}

Adapter::SavedColumns LoraAdapter::saved_columns() const {
  if (opt_.dropout <= 0.f) return {{opt_.r}, 0};
  return {{opt_.r, in_}, in_};  // h, the dropped input and its mask
}

void LoraAdapter::write_peft_config(nlohmann::json& cfg, const std::string& module) const {
  cfg["peft_type"] = "LORA";
  write_lora_pattern_fields(cfg, module, opt_);  // r, lora_alpha, rank_pattern, alpha_pattern
  cfg["lora_dropout"] = opt_.dropout;
  cfg["use_rslora"] = opt_.rslora;
  cfg["init_lora_weights"] = true;
  cfg["use_dora"] = false;
}

void LoraAdapter::backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight&) { lora_backward(dx, dy, x); }

void LoraAdapter::lora_backward(Tensor dx, Tensor dy, Tensor x) {
  int64_t n = x.numel() / in_;
  Tensor dy2 = dy.view({n, out_});
  Tensor xin = xd_.defined() ? xd_ : x.view({n, in_});
  float s = opt_.scale();
  // dB += s * dy^T h ;  dh = s * dy B ;  dA += dh^T x ;  dx += dh A
  gemm(b_->grad, dy2, h_, true, false, s, 1.f);
  Tensor dh = Tensor::empty({n, opt_.r}, dy.dtype(), dy.device());
  gemm(dh, dy2, b_->value, false, false, s, 0.f);
  gemm(a_->grad, dh, xin, true, false, 1.f, 1.f);
  if (xd_.defined()) {
    Tensor dxd = Tensor::empty({n, in_}, dx.dtype(), dx.device());
    gemm(dxd, dh, a_->value, false, false);
    dropout_backward(dxd, dxd, mask_, opt_.dropout);
    add_inplace(dx, dxd);
  } else {
    gemm(dx.view({n, in_}), dh, a_->value, false, false, 1.f, 1.f);
  }
  h_ = Tensor();
}

std::vector<std::pair<std::string, Tensor>> LoraAdapter::tensors() const {
  return {{"lora_A.weight", a_->value}, {"lora_B.weight", b_->value}};
}

Tensor LoraAdapter::delta_f32(const BaseWeight&) const {
  Tensor a = a_->value.to(Device::CPU), b = b_->value.to(Device::CPU);
  Tensor d = Tensor::empty({out_, in_}, DType::F32);
  gemm(d, b, a, false, false, opt_.scale(), 0.f);
  return d;
}

}  // namespace qtrain

QT_REGISTER_ADAPTER(lora, {.name = "lora",
                           .help = "LoRA: y += s * B A x (s = alpha / r, or alpha / sqrt(r) with --rslora)",
                           .make = [](const qtrain::AdapterRequest& r) -> std::unique_ptr<qtrain::Adapter> {
                             return std::make_unique<qtrain::LoraAdapter>(r.in, r.out, qtrain::lora_options_for(r.opt.lora, r.module));
                           }});
