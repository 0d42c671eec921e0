#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/error.h"

namespace pmpl {

namespace {

using Kind = LrSchedule::Kind;

Kind parse_kind(const std::string& kind) {
  if (kind == "cosine") return Kind::kCosine;
  if (kind == "step") return Kind::kStep;
  if (kind == "exponential") return Kind::kExponential;
  PMPL_CHECK(kind == "constant", "--sched {} is not a schedule pmpl has: use {}", kind, kSchedules);
  return Kind::kConstant;
}

}  // namespace

LrSchedule::LrSchedule(const ScheduleOptions& options, int64_t warmup_steps, int64_t steps_per_epoch,
                       int64_t total_steps)
    : o_(options),
      kind_(parse_kind(options.kind)),
      warmup_(warmup_steps),
      per_epoch_(std::max<int64_t>(steps_per_epoch, 1)),
      total_(total_steps) {
  PMPL_CHECK(kind_ != Kind::kStep || o_.step_size > 0, "--lr-step-size must be positive, got {}", o_.step_size);
  PMPL_CHECK(o_.gamma > 0 && o_.gamma <= 1, "--lr-gamma {} is outside (0, 1]", o_.gamma);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_) return o_.lr * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  const int64_t since = step - warmup_;
  if (kind_ == Kind::kConstant) return o_.lr;
  if (kind_ == Kind::kCosine) {
    const double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
    const double t = std::min(1.0, static_cast<double>(since) / span);
    return o_.min_lr + 0.5 * (o_.lr - o_.min_lr) * (1.0 + std::cos(3.14159265358979323846 * t));
  }
  const double e = o_.per_step ? static_cast<double>(since) / static_cast<double>(per_epoch_)
                               : static_cast<double>(since / per_epoch_);
  // The guard keeps a boundary on its epoch where step_size has no exact double (e = 12, 2.4).
  const double power = kind_ == Kind::kStep ? std::floor(e / o_.step_size + 1e-9) : e;
  return std::max(o_.min_lr, o_.lr * std::pow(o_.gamma, power));
}

std::string LrSchedule::describe() const {
  if (kind_ == Kind::kCosine) return fmt::format("cosine to {:g}", o_.min_lr);
  if (kind_ == Kind::kConstant) return "constant";
  const std::string decay = kind_ == Kind::kStep ? fmt::format("x {:g} every {:g} epochs", o_.gamma, o_.step_size)
                                                 : fmt::format("x {:g} per epoch", o_.gamma);
  return fmt::format("{}{}, floor {:g}", decay, o_.per_step ? " (per step)" : "", o_.min_lr);
}

}  // namespace pmpl
