// Learning rate per step (`pmpl train --sched`): a linear warm-up to `lr`, then one of
//   cosine       to min_lr at the last step, per step (timm's cosine with per-step updates);
//   step         lr * gamma^floor(e / step_size) (torchvision's StepLR, timm's step; step_size may
//                be fractional, as timm's MobileNet recipes' 2.4);
//   exponential  lr * gamma^e (torchvision's ExponentialLR, 0.98 for its MobileNetV2);
//   constant     lr;
// where e counts the epochs since the warm-up ended: whole epochs (the lr changes at epoch
// boundaries, as torchvision steps its schedulers once per epoch) or, with per_step, fractions.
// The step and exponential decays never go below min_lr. Counting from the end of the warm-up is
// torchvision's SequentialLR; the cosine's span starts there too.
#pragma once

#include <cstdint>
#include <string>

namespace pmpl {

struct ScheduleOptions {
  std::string kind = "cosine";  // cosine, step, exponential, constant
  double lr = 0.05;
  double min_lr = 1e-5;
  double step_size = 1.0;  // epochs, for step
  double gamma = 0.1;      // step's and exponential's factor
  bool per_step = false;   // step and exponential: decay within epochs too
};

inline constexpr const char* kSchedules = "cosine, step, exponential or constant";

// The cosine schedule without warm-up that the tests' hand-written loops use.
inline ScheduleOptions cosine_schedule(double lr, double min_lr) { return {"cosine", lr, min_lr}; }

class LrSchedule {
 public:
  enum class Kind { kCosine, kStep, kExponential, kConstant };

  LrSchedule(const ScheduleOptions& options, int64_t warmup_steps, int64_t steps_per_epoch, int64_t total_steps);
  double at(int64_t step) const;
  // What follows the warm-up, for the run's start line ("x 0.98 per epoch, floor 1e-05").
  std::string describe() const;

 private:
  ScheduleOptions o_;
  Kind kind_;  // o_.kind, parsed once
  int64_t warmup_, per_epoch_, total_;
};

}  // namespace pmpl
