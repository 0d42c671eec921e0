#include "train/adam.h"

#include <cmath>

#include "engine/error.h"
#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

Adam::Adam(ParameterGroup& group, AdamOptions options) : group_(group), options_(options) {
  if (!group.empty()) {
    m_ = zeros_like(group.values());
    v_ = zeros_like(group.values());
  }
}

void Adam::step() {
  if (group_.empty()) return;
  const ProfileRange range("adam step");
  ++steps_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  flat::adam_step(group_.values(), group_.grads(), m_, v_, group_.active_ranges(), options_.beta1, options_.beta2,
                  options_.weight_decay, options_.eps, options_.lr / c1, std::sqrt(c2));
}

void Adam::restore(const Tensor& m, const Tensor& v, int64_t steps) {
  PMPL_CHECK(m.shape() == m_.shape() && v.shape() == v_.shape(),
             "Adam state of {} elements does not fit {}", m.numel(), m_.numel());
  m_.copy_(m);
  v_.copy_(v);
  steps_ = steps;
}

}  // namespace pmpl
