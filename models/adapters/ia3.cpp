#include "models/adapters/ia3.h"

#include <nlohmann/json.hpp>

#include "kernels/column_scale.h"
#include "kernels/elementwise.h"
#include "models/model.h"

namespace qtrain {

std::vector<std::string> ia3_default_targets(Arch arch) {
  return arch == Arch::GPT2 ? std::vector<std::string>{"c_attn", "mlp.c_proj"}
                            : std::vector<std::string>{"k_proj", "v_proj", "down_proj"};
}

std::vector<std::string> ia3_default_feedforward(Arch arch) {
  return arch == Arch::GPT2 ? std::vector<std::string>{"mlp.c_proj"} : std::vector<std::string>{"down_proj"};
}

bool ia3_is_feedforward(const std::string& module, const std::vector<std::string>& feedforward) {
  for (auto& f : feedforward)
    if (module.size() >= f.size() && module.compare(module.size() - f.size(), f.size(), f) == 0) return true;
  return false;
}

void Ia3Adapter::declare(ParamSet& ps, const std::string& module, int layer) {
  il_ = ps.declare(module + ".ia3_l", ff_ ? Shape{1, in_} : Shape{out_, 1}, true, layer);
}

void Ia3Adapter::bind_and_init(ParamSet& ps, uint64_t, const BaseWeight&) {
  l_ = &ps[il_];
  std::vector<float> ones(size_t(l_->value.numel()), 1.f);
  l_->value.copy_from(Tensor::wrap(ones.data(), l_->shape, DType::F32));
}

void Ia3Adapter::forward(Tensor y, Tensor, const BaseWeight&, bool train, uint64_t) {
  if (ff_) return;  // the input was scaled before the base product
  y0_ = train ? y.clone() : Tensor();
  mul_cols(y, y, vec());
}

Tensor Ia3Adapter::base_grad(Tensor dy) {
  if (ff_) return dy;
  Tensor d = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  mul_cols(d, dy, vec());
  return d;
}

void Ia3Adapter::backward(Tensor, Tensor dy, Tensor, const BaseWeight&) {
  if (ff_) return;  // scale_input_backward did it
  col_dot(l_->grad.view({out_}), dy, y0_);
  y0_ = Tensor();
}

void Ia3Adapter::scale_input(Tensor xs, Tensor x) { mul_cols(xs, x, vec()); }

void Ia3Adapter::scale_input_backward(Tensor dx, Tensor dxs, Tensor x, bool accumulate) {
  col_dot(l_->grad.view({in_}), dxs, x);
  if (!accumulate) return mul_cols(dx, dxs, vec());
  mul_cols(dxs, dxs, vec());
  add_inplace(dx, dxs);
}

void Ia3Adapter::write_peft_config(nlohmann::json& cfg, const std::string& module) const {
  cfg["peft_type"] = "IA3";
  cfg["init_ia3_weights"] = true;
  if (!cfg.contains("feedforward_modules")) cfg["feedforward_modules"] = nlohmann::json::array();
  if (ff_) cfg["feedforward_modules"].push_back(module);  // save_peft_adapter shortens module paths
}

Tensor Ia3Adapter::delta_f32(const BaseWeight& base) const {
  // peft's merge: W * l (columns, feed-forward) or diag(l) W (rows); delta = that - W.
  Tensor w = base.dense_f32();
  Tensor l = l_->value.to(Device::CPU, DType::F32);
  float* pw = w.f32();
  for (int64_t i = 0; i < out_; ++i)
    for (int64_t j = 0; j < in_; ++j) pw[i * in_ + j] *= (ff_ ? l.f32()[j] : l.f32()[i]) - 1.f;
  return w;
}

void Ia3Adapter::merge_bias(Tensor bias) const {
  if (ff_) return;
  Tensor l = l_->value.to(Device::CPU, DType::F32);
  for (int64_t i = 0; i < out_; ++i) bias.f32()[i] *= l.f32()[i];
}

}  // namespace qtrain

QT_REGISTER_ADAPTER(ia3, {.name = "ia3",
                          .help = "IA3: learned scales on k/v outputs and feed-forward inputs (peft's modules by default)",
                          .make = [](const qtrain::AdapterRequest& r) -> std::unique_ptr<qtrain::Adapter> {
                            return std::make_unique<qtrain::Ia3Adapter>(
                                r.in, r.out, qtrain::ia3_is_feedforward(r.module, *r.opt.ia3_feedforward));
                          },
                          .defaults = [](qtrain::Arch arch, qtrain::ModelOptions& o) {
                            if (o.targets == std::vector<std::string>{"all-linear"})
                              o.targets = qtrain::ia3_default_targets(arch);
                            if (!o.ia3_feedforward) o.ia3_feedforward = qtrain::ia3_default_feedforward(arch);
                          }});
