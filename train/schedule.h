// Learning rate per step: a linear warmup to `lr`, then cosine decay to `min_lr` (timm's
// per-step schedule).
#pragma once

#include <cmath>
#include <algorithm>
#include <cstdint>

namespace pmpl {

class CosineSchedule {
 public:
  CosineSchedule(double lr, double min_lr, int64_t warmup_steps, int64_t total_steps)
      : lr_(lr), min_lr_(min_lr), warmup_(warmup_steps), total_(total_steps) {}

  double at(int64_t step) const {
    if (step < warmup_) return lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
    const double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
    const double t = std::min(1.0, static_cast<double>(step - warmup_) / span);
    return min_lr_ + 0.5 * (lr_ - min_lr_) * (1.0 + std::cos(3.14159265358979323846 * t));
  }

 private:
  double lr_, min_lr_;
  int64_t warmup_, total_;
};

}  // namespace pmpl
