// Parameters packed into one flat buffer, gradients into another, with every parameter tensor
// re-pointed at its slice (DESIGN §3): one loop (or kernel) updates them all, one all-reduce
// covers all gradients, and a checkpoint is the buffer. Weights that take weight decay come
// first, then the rest (batchnorm scales, biases), so decay applies to a prefix.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace pmpl {

class ParameterGroup {
 public:
  // Packs `params` (any order; weights are moved before the rest). The tensors keep their
  // values and identities: layers holding them see the packed storage.
  explicit ParameterGroup(std::vector<NamedParameter> params);

  const Tensor& values() const { return values_; }
  const Tensor& grads() const { return grads_; }
  const std::vector<NamedParameter>& params() const { return params_; }
  // Where params()[i] starts in the flat buffers.
  int64_t offset(size_t i) const { return offsets_[i]; }
  int64_t numel() const { return values_.defined() ? values_.numel() : 0; }
  // Elements [0, decay_numel) take weight decay: the ParamKind::kWeight ones (timm's grouping:
  // no decay on batchnorm and biases), or all of them after decay_all() (torchvision's default).
  int64_t decay_numel() const { return decay_numel_; }
  void decay_all() { decay_numel_ = numel(); }
  bool empty() const { return params_.empty(); }
  void zero_grad();

  // Optimisers skip inactive parameters (a fixed enhancer's frozen alpha, a dropped strip
  // candidate): their values and optimiser state stay as they are. The layout never changes, so
  // checkpoints of the flat buffers stay compatible.
  // Deactivates every parameter whose name starts with `prefix` (a whole name included).
  void deactivate(const std::string& prefix);
  bool active(const std::string& name) const;
  // [begin, end) element ranges of the active parameters, in order.
  const std::vector<std::pair<int64_t, int64_t>>& active_ranges() const { return ranges_; }
  // Whether backward computes these parameters' gradients (off for the weights during the
  // architecture step, which needs only the alphas').
  void set_requires_grad(bool on);
  // Scales the active gradients down to global L2 norm max_norm when their norm is above it
  // (torch's clip_grad_norm_ with its 1e-6 guard). On a GPU the decision is taken there: the host
  // does not wait. Returns the sum of squares it measured before clipping (grad_sum_squares_on_device),
  // undefined when it measured nothing (max_norm <= 0, no gradients).
  Tensor clip_gradients(double max_norm);
  // The sum of squares of the active gradients: one f64 value on their device, read when needed.
  Tensor grad_sum_squares_on_device() const;
  // The sum of squares of the active gradients (double): inf or NaN when any gradient is.
  double grad_sum_squares() const;

 private:
  void rebuild_ranges();

  std::vector<NamedParameter> params_;
  std::vector<int64_t> offsets_;
  std::vector<bool> active_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  Tensor values_, grads_;
  int64_t decay_numel_ = 0;
};

}  // namespace pmpl
