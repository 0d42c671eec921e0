#include "train/adamw.h"

#include <cmath>

#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

AdamW::AdamW(ParameterGroup& group, AdamWOptions options)
    : WeightOptimizer(group), options_(options), m_(add_state("exp_avg", 0.0)), v_(add_state("exp_avg_sq", 0.0)) {}

void AdamW::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("adamw step");
  ++steps_;
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  flat::adamw_step(group_.values(), group_.grads(), m_, v_, group_.active_ranges(), group_.decay_numel(), lr,
                   options_.beta1, options_.beta2, options_.weight_decay, options_.eps, lr / c1, std::sqrt(c2));
}

}  // namespace pmpl
