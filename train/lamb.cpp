#include "train/lamb.h"

#include <cmath>

#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

Lamb::Lamb(ParameterGroup& group, LambOptions options)
    : WeightOptimizer(group), options_(options), m_(add_state("exp_avg", 0.0)), v_(add_state("exp_avg_sq", 0.0)) {
  if (!group.empty()) update_ = zeros_like(group.values());
}

void Lamb::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("lamb step");
  ++steps_;
  // The trust ratio is per tensor: one segment per active parameter.
  std::vector<flat::LambSegment> segments;
  for (size_t i = 0; i < group_.params().size(); ++i) {
    const NamedParameter& p = group_.params()[i];
    if (!group_.active(p.name)) continue;
    const int64_t begin = group_.offset(i);
    segments.push_back({begin, begin + p.tensor.numel(), begin < group_.decay_numel()});
  }
  const double c1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double c2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  flat::lamb_step(group_.values(), group_.grads(), m_, v_, update_, segments, group_.grad_sum_squares_on_device(),
                  options_.max_grad_norm, lr, options_.beta1, options_.beta2, options_.weight_decay, options_.eps, c1,
                  std::sqrt(c2));
}

}  // namespace pmpl
