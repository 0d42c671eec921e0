#include "train/loss_scale.h"

#include <cmath>

#include "engine/ops.h"

namespace pmpl {

LossScaler::LossScaler(bool enabled, double initial, int64_t growth_interval)
    : enabled_(enabled), scale_(enabled ? initial : 1.0), growth_interval_(growth_interval) {}

Tensor LossScaler::scale(const Tensor& loss) const { return enabled_ ? ops::scale(loss, scale_) : loss; }

bool LossScaler::unscale(ParameterGroup& group) {
  if (!enabled_ || group.empty()) return true;
  // Checked before dividing: an overflow is an overflow at any scale.
  if (!std::isfinite(group.grad_sum_squares())) {
    scale_ /= 2.0;  // no floor (as PyTorch): below 1 it still shrinks gradients that overflow
    good_steps_ = 0;
    ++skipped_in_a_row_;
    return false;
  }
  skipped_in_a_row_ = 0;
  ops::scale_(group.grads(), 1.0 / scale_);
  return true;
}

void LossScaler::step_taken() {
  if (!enabled_) return;
  if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

void LossScaler::restore(bool saved_enabled, double scale, int64_t good_steps) {
  if (!enabled_ || !saved_enabled) return;
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace pmpl
