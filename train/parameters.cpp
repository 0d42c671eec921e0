#include "train/parameters.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/flat_update.h"

namespace pmpl {

ParameterGroup::ParameterGroup(std::vector<NamedParameter> params) : params_(std::move(params)) {
  std::stable_partition(params_.begin(), params_.end(),
                        [](const NamedParameter& p) { return p.kind == ParamKind::kWeight; });
  if (params_.empty()) return;
  const DType dtype = params_[0].tensor.dtype();
  const Device device = params_[0].tensor.device();
  int64_t total = 0;
  for (const NamedParameter& p : params_) {
    PMPL_ASSERT(p.tensor.dtype() == dtype && p.tensor.device() == device,
                "parameter {} has another dtype or device than the group", p.name);
    if (p.kind == ParamKind::kWeight) decay_numel_ += p.tensor.numel();
    total += p.tensor.numel();
  }
  values_ = Tensor::empty(Shape{total}, dtype, device);
  grads_ = Tensor::zeros(Shape{total}, dtype, device);
  int64_t offset = 0;
  for (const NamedParameter& p : params_) {
    Tensor slice = values_.view_slice(offset, p.tensor.shape());
    slice.copy_(p.tensor);
    // Re-point the parameter itself, so every handle to it (the layer's member) follows.
    TensorImpl* impl = p.tensor.impl();
    impl->storage = slice.impl()->storage;
    impl->offset = slice.impl()->offset;
    p.tensor.set_grad(grads_.view_slice(offset, p.tensor.shape()));
    offsets_.push_back(offset);
    offset += p.tensor.numel();
  }
  active_.assign(params_.size(), true);
  rebuild_ranges();
}

void ParameterGroup::rebuild_ranges() {
  ranges_.clear();
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!active_[i]) continue;
    const int64_t begin = offsets_[i], end = begin + params_[i].tensor.numel();
    if (!ranges_.empty() && ranges_.back().second == begin) ranges_.back().second = end;
    else ranges_.emplace_back(begin, end);
  }
}

void ParameterGroup::deactivate(const std::string& prefix) {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name.rfind(prefix, 0) == 0) active_[i] = false;
  }
  rebuild_ranges();
}

bool ParameterGroup::active(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) return active_[i];
  }
  return false;
}

void ParameterGroup::set_requires_grad(bool on) {
  for (const NamedParameter& p : params_) p.tensor.impl()->requires_grad = on;
}

Tensor ParameterGroup::grad_sum_squares_on_device() const {
  if (empty()) return Tensor::zeros(Shape{1}, DType::kF64);
  return flat::sum_squares(grads_, ranges_);
}

double ParameterGroup::grad_sum_squares() const { return grad_sum_squares_on_device().item(); }

Tensor ParameterGroup::clip_gradients(double max_norm) {
  if (empty() || max_norm <= 0.0) return Tensor();
  const Tensor total = grad_sum_squares_on_device();
  flat::clip_by_norm(grads_, ranges_, total, max_norm);
  return total;
}

void ParameterGroup::zero_grad() {
  if (grads_.defined()) grads_.zero_();
}

}  // namespace pmpl
