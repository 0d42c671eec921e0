#include "train/parameters.h"

#include <algorithm>

#include "engine/error.h"

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
    offset += p.tensor.numel();
  }
}

void ParameterGroup::zero_grad() {
  if (grads_.defined()) grads_.zero_();
}

}  // namespace pmpl
