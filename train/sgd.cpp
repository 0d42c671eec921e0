#include "train/sgd.h"

#include "engine/error.h"
#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

Sgd::Sgd(ParameterGroup& group, SgdOptions options) : group_(group), options_(options) {
  if (!group.empty()) buffer_ = zeros_like(group.values());
}

void Sgd::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("sgd step");
  flat::sgd_step(group_.values(), group_.grads(), buffer_, group_.active_ranges(), group_.decay_numel(), lr,
                 options_.momentum, options_.weight_decay, options_.nesterov, steps_ == 0);
  ++steps_;
}

void Sgd::restore(const Tensor& buffer, int64_t steps) {
  PMPL_CHECK(buffer.shape() == buffer_.shape(), "SGD state of {} elements does not fit {}",
             buffer.numel(), buffer_.numel());
  buffer_.copy_(buffer);
  steps_ = steps;
}

}  // namespace pmpl
