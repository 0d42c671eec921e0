#include "train/rmsprop_tf.h"

#include "engine/flat_update.h"
#include "engine/profile.h"

namespace pmpl {

// The square average starts at 1, TensorFlow's start (PyTorch's RMSprop starts at 0).
RmspropTf::RmspropTf(ParameterGroup& group, RmspropTfOptions options)
    : WeightOptimizer(group),
      options_(options),
      square_avg_(add_state("square_avg", 1.0)),
      buffer_(add_state("momentum", 0.0)) {}

void RmspropTf::step(double lr) {
  if (group_.empty()) return;
  const ProfileRange range("rmsproptf step");
  flat::rmsprop_tf_step(group_.values(), group_.grads(), square_avg_, buffer_, group_.active_ranges(),
                        group_.decay_numel(), lr, kRho, options_.momentum, options_.weight_decay, options_.eps);
  ++steps_;
}

}  // namespace pmpl
