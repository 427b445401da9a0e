#include "models/adapters/qablora.h"

#include <nlohmann/json.hpp>

#include "kernels/col_groups.h"
#include "kernels/matmul.h"
#include "models/model.h"

namespace qtrain {

QABloraAdapter::QABloraAdapter(const std::string& module, int64_t in, int64_t out, LoraOptions opt)
    : in_(in), out_(out), to_(opt.qablora_tile_out), ti_(opt.qablora_tile_in), opt_(opt) {
  if (to_ < 1 || ti_ < 1 || in % ti_ != 0 || out % to_ != 0)
    throw Error("QA-BLoRA tile " + std::to_string(to_) + " x " + std::to_string(ti_) + " (out x in): module '" + module +
                "' is [out " + std::to_string(out) + ", in " + std::to_string(in) + "], not divisible into such tiles");
  if (opt.r <= 0 || opt.alpha <= 0.f) throw Error("--lora-r and --lora-alpha must be positive (QA-BLoRA's scale is alpha / r)");
  if (opt.dropout != 0.f) throw Error("--lora-dropout: QA-BLoRA has no dropout (its input is pooled per tile)");
}

void QABloraAdapter::declare(ParamSet& ps, const std::string& module, int layer) {
  ih_ = ps.declare(module + ".qablora_H.weight", {out_ / to_, in_ / ti_}, true, layer);
}

void QABloraAdapter::bind_and_init(ParamSet& ps, uint64_t, const BaseWeight&) {
  h_ = &ps[ih_];
  h_->value.zero_();  // a single matrix: zero starts at the base model and still gets gradients
}

void QABloraAdapter::save_pooled(Tensor x) {
  const int64_t n = x.numel() / in_;
  xp_ = Tensor::empty({n, in_ / ti_}, x.dtype(), x.device());
  sum_col_groups(xp_, x.view({n, in_}), ti_, 1.f / float(ti_));
}

void QABloraAdapter::forward(Tensor y, Tensor x, const BaseWeight&, bool, uint64_t) {
  save_pooled(x);
  const int64_t n = xp_.size(0);
  Tensor yp = Tensor::empty({n, out_ / to_}, y.dtype(), y.device());
  gemm(yp, xp_, h_->value, false, true, opt_.scale(), 0.f);
  add_repeat_cols(y.view({n, out_}), yp, to_, 1.f);
}

bool QABloraAdapter::save_for_backward(Tensor x, const BaseWeight&, bool, uint64_t) {
  save_pooled(x);
  return true;
}

void QABloraAdapter::backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight&) {
  const int64_t n = xp_.size(0);
  const float s = opt_.scale();
  Tensor dyp = Tensor::empty({n, out_ / to_}, dy.dtype(), dy.device());
  sum_col_groups(dyp, dy.view({n, out_}), to_, 1.f);          // the repeat's backward
  gemm(h_->grad, dyp, xp_, true, false, s, 1.f);              // dH += s dyp^T xp
  Tensor dxp = Tensor::empty({n, in_ / ti_}, dx.dtype(), dx.device());
  gemm(dxp, dyp, h_->value, false, false, s, 0.f);            // dxp = s dyp H
  add_repeat_cols(dx.view({n, in_}), dxp, ti_, 1.f / float(ti_));  // the pool's backward
  xp_ = Tensor();
}

void QABloraAdapter::write_peft_config(nlohmann::json& cfg, const std::string&) const {
  cfg["peft_type"] = "QABLORA";
  cfg["r"] = opt_.r;
  cfg["lora_alpha"] = opt_.alpha;
  cfg["use_rslora"] = opt_.rslora;
  cfg["qablora_tile"] = {to_, ti_};
  cfg["qtrain_note"] = "QA-BLoRA: y += s * repeat_interleave(avg_pool(x, tile[1]) H^T, tile[0]), "
                       "H [out/tile[0], in/tile[1]], s = lora_alpha / r";
}

std::vector<std::pair<std::string, Tensor>> QABloraAdapter::tensors() const { return {{"qablora_H.weight", h_->value}}; }

Tensor QABloraAdapter::tile_shift() const {
  Tensor t = h_->value.to(Device::CPU, DType::F32);
  const float k = opt_.scale() / float(ti_);
  for (int64_t j = 0; j < t.numel(); ++j) t.f32()[j] *= k;
  return t;
}

Tensor QABloraAdapter::delta_f32(const BaseWeight&) const {
  const Tensor t = tile_shift();
  const int64_t cols = in_ / ti_;
  Tensor d = Tensor::empty({out_, in_}, DType::F32);
  for (int64_t o = 0; o < out_; ++o)
    for (int64_t i = 0; i < in_; ++i) d.f32()[o * in_ + i] = t.f32()[(o / to_) * cols + i / ti_];
  return d;
}

}  // namespace qtrain

QT_REGISTER_ADAPTER(qablora, {.name = "qablora",
                              .help = "QA-BLoRA: one matrix H, one entry per --qablora-tile (8 x 4 out x in) tile of W: "
                                      "y += s * repeat(avg_pool(x) H^T); merges exactly into a tiled 4-bit base",
                              .make = [](const qtrain::AdapterRequest& r) -> std::unique_ptr<qtrain::Adapter> {
                                return std::make_unique<qtrain::QABloraAdapter>(r.module, r.in, r.out, r.opt.lora);
                              }});
