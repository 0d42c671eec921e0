#include "train/sgd.h"

#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

Sgd::Sgd(ParameterGroup& group, SgdOptions options)
    : WeightOptimizer(group), options_(options), buffer_(add_state("momentum", 0.0)) {}

void Sgd::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("sgd step");
  flat::sgd_step(group_.values(), group_.grads(), buffer_, group_.active_ranges(), group_.decay_numel(), lr,
                 options_.momentum, options_.weight_decay, options_.nesterov, steps_ == 0);
  ++steps_;
}

}  // namespace pmpl
