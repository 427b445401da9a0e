#include "models/params.h"

#include "kernels/elementwise.h"

namespace qtrain {

size_t ParamSet::declare(const std::string& name, const Shape& shape, bool decay, int layer) {
  QT_CHECK(!allocated(), "ParamSet::declare after allocate: " + name);
  Param p;
  p.name = name;
  p.shape = shape;
  p.decay = decay;
  p.layer = layer;
  p.offset = numel_;
  int64_t n = 1;
  for (auto d : shape) n *= d;
  // Keep every parameter 16-element aligned so vectorised kernels can treat
  // each view as aligned memory.
  numel_ += (n + 15) / 16 * 16;
  params_.push_back(std::move(p));
  return params_.size() - 1;
}

void ParamSet::allocate(Device device) {
  values_ = Tensor::zeros({std::max<int64_t>(numel_, 1)}, DType::F32, device);
  grads_ = Tensor::zeros({std::max<int64_t>(numel_, 1)}, DType::F32, device);
  for (auto& p : params_) {
    int64_t n = 1;
    for (auto d : p.shape) n *= d;
    p.value = values_.flat(p.offset, p.offset + n).view(p.shape);
    p.grad = grads_.flat(p.offset, p.offset + n).view(p.shape);
  }
}

void ParamSet::enable_compute_copy() {
  QT_CHECK(allocated(), "ParamSet::enable_compute_copy before allocate");
  if (!values_.is_cuda() || compute_.defined()) return;
  compute_ = Tensor::empty(values_.shape(), DType::BF16, values_.device());
  for (auto& p : params_) p.compute = compute_.flat(p.offset, p.offset + p.value.numel()).view(p.shape);
  sync_compute_copy();
}

void ParamSet::sync_compute_copy() {
  if (compute_.defined()) convert(compute_, values_);
}

const Param* ParamSet::find(const std::string& name) const {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace qtrain
