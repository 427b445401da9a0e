#include "models/adapters/qblora.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/col_groups.h"
#include "kernels/matmul.h"
#include "models/model.h"

namespace qtrain {

namespace {
// LoRA's options for the inner adapter: rank lambda r with the scale of rank r.
LoraOptions inner(const std::string& module, int64_t in, int64_t out, const LoraOptions& o) {
  const int64_t l = o.blora_lambda;
  if (l < 1) throw Error("--blora-lambda must be at least 1 (got " + std::to_string(l) + ")");
  if (in % l != 0 || out % l != 0)
    throw Error("--blora-lambda " + std::to_string(l) + ": module '" + module + "' is [out " + std::to_string(out) +
                ", in " + std::to_string(in) + "], not divisible by lambda (Q-BLoRA pools the input and " +
                "repeats the output in groups of lambda); pick a lambda that divides every targeted size");
  LoraOptions r = o;
  r.r = int(o.r * l);
  r.alpha = o.rslora ? o.alpha * std::sqrt(float(l)) : o.alpha * float(l);  // r.scale() == o.scale()
  return r;
}
}  // namespace

QBloraAdapter::QBloraAdapter(const std::string& module, int64_t in, int64_t out, LoraOptions opt)
    : LoraAdapter(in / std::max(opt.blora_lambda, 1), out / std::max(opt.blora_lambda, 1), inner(module, in, out, opt)),
      lambda_(opt.blora_lambda),
      user_(opt) {}

void QBloraAdapter::save_pooled(Tensor x, bool train, uint64_t dropout_seed) {
  const int64_t n = x.numel() / (in_ * lambda_);
  xp_ = Tensor::empty({n, in_}, x.dtype(), x.device());
  sum_col_groups(xp_, x.view({n, in_ * lambda_}), lambda_, 1.f / float(lambda_));
  save_input(xp_, train, dropout_seed);
}

void QBloraAdapter::forward(Tensor y, Tensor x, const BaseWeight&, bool train, uint64_t dropout_seed) {
  save_pooled(x, train, dropout_seed);
  const int64_t n = xp_.size(0);
  Tensor yp = Tensor::empty({n, out_}, y.dtype(), y.device());
  gemm(yp, h_, b_->value, false, true, opt_.scale(), 0.f);
  add_repeat_cols(y.view({n, out_ * lambda_}), yp, lambda_, 1.f);
}

bool QBloraAdapter::save_for_backward(Tensor x, const BaseWeight&, bool train, uint64_t dropout_seed) {
  save_pooled(x, train, dropout_seed);
  return true;
}

void QBloraAdapter::backward(Tensor dx, Tensor dy, Tensor x, const BaseWeight&) {
  // The repeat's backward sums dy over each group; the pool's spreads dxp / lambda.
  const int64_t n = xp_.size(0);
  Tensor dyp = Tensor::empty({n, out_}, dy.dtype(), dy.device());
  sum_col_groups(dyp, dy.view({n, out_ * lambda_}), lambda_, 1.f);
  Tensor dxp = Tensor::zeros({n, in_}, dx.dtype(), dx.device());
  lora_backward(dxp, dyp, xp_);
  add_repeat_cols(dx.view({n, in_ * lambda_}), dxp, lambda_, 1.f / float(lambda_));
  xp_ = Tensor();
}

void QBloraAdapter::write_peft_config(nlohmann::json& cfg, const std::string&) const {
  cfg["peft_type"] = "QBLORA";
  cfg["r"] = user_.r;  // the LoRA rank it matches; the adapter's own rank is blora_lambda * r
  cfg["lora_alpha"] = user_.alpha;
  cfg["lora_dropout"] = user_.dropout;
  cfg["use_rslora"] = user_.rslora;
  cfg["blora_lambda"] = lambda_;
  cfg["qtrain_note"] = "Q-BLoRA: y += s * repeat_interleave(avg_pool(x, blora_lambda) A^T B^T, blora_lambda), "
                       "A [blora_lambda*r, in/blora_lambda], B [out/blora_lambda, blora_lambda*r], s = lora_alpha / r";
}

Tensor QBloraAdapter::delta_f32(const BaseWeight& base) const {
  Tensor small = LoraAdapter::delta_f32(base);  // s B A [out / lambda, in / lambda]
  const int64_t I = in_ * lambda_, O = out_ * lambda_;
  Tensor d = Tensor::empty({O, I}, DType::F32);
  const float inv = 1.f / float(lambda_);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i) d.f32()[o * I + i] = small.f32()[(o / lambda_) * in_ + i / lambda_] * inv;
  return d;
}

}  // namespace qtrain

QT_REGISTER_ADAPTER(qblora, {.name = "qblora",
                             .help = "Q-BLoRA: LoRA at rank lambda*r on the input average-pooled by lambda, output "
                                     "repeated lambda times (--blora-lambda; LoRA's parameter count at rank r)",
                             .make = [](const qtrain::AdapterRequest& r) -> std::unique_ptr<qtrain::Adapter> {
                               return std::make_unique<qtrain::QBloraAdapter>(r.module, r.in, r.out, r.opt.lora);
                             }});
