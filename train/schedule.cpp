#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace pmpl {

LrSchedule::LrSchedule(const ScheduleOptions& options, int64_t warmup_steps, int64_t steps_per_epoch,
                       int64_t total_steps)
    : o_(options), warmup_(warmup_steps), per_epoch_(std::max<int64_t>(steps_per_epoch, 1)), total_(total_steps) {
  PMPL_CHECK(o_.kind == "cosine" || o_.kind == "step" || o_.kind == "exponential" || o_.kind == "constant",
             "--sched {} is not a schedule pmpl has: use {}", o_.kind, kSchedules);
  PMPL_CHECK(o_.kind != "step" || o_.step_size > 0, "--lr-step-size must be positive, got {}", o_.step_size);
  PMPL_CHECK(o_.gamma > 0 && o_.gamma <= 1, "--lr-gamma {} is outside (0, 1]", o_.gamma);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_) return o_.lr * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  const int64_t since = step - warmup_;
  if (o_.kind == "constant") return o_.lr;
  if (o_.kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
    const double t = std::min(1.0, static_cast<double>(since) / span);
    return o_.min_lr + 0.5 * (o_.lr - o_.min_lr) * (1.0 + std::cos(3.14159265358979323846 * t));
  }
  const double e = o_.per_step ? static_cast<double>(since) / static_cast<double>(per_epoch_)
                               : static_cast<double>(since / per_epoch_);
  // The guard keeps a boundary on its epoch where step_size has no exact double (e = 12, 2.4).
  const double power = o_.kind == "step" ? std::floor(e / o_.step_size + 1e-9) : e;
  return std::max(o_.min_lr, o_.lr * std::pow(o_.gamma, power));
}

}  // namespace pmpl
