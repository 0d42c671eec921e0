// Dynamic loss scaling for fp16 mixed precision (PyTorch GradScaler's policy): the loss is
// multiplied by S before backward so small gradients survive fp16's range; after backward the
// gradients are divided by S, and a step whose gradients overflowed (inf or NaN) is skipped with S
// halved; after `growth_interval` good steps in a row S doubles. bf16 has f32's range and needs
// none: a disabled scaler passes everything through.
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "train/parameters.h"

namespace pmpl {

class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double value() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  // Steps skipped in a row, and whether that is too many: gradients that keep overflowing at any
  // scale will not recover, so the trainer stops.
  int64_t skipped_in_a_row() const { return skipped_in_a_row_; }
  bool gave_up() const { return skipped_in_a_row_ >= 50; }
  // loss * S (the loss itself when disabled).
  Tensor scale(const Tensor& loss) const;
  // Divides the group's gradients by S. False when any was inf or NaN: the caller skips the
  // optimiser step (S is halved here). One wait for the GPU per call when enabled.
  bool unscale(ParameterGroup& group);
  // Counts a step taken (S doubles after growth_interval in a row).
  void step_taken();
  // For resuming: a checkpoint's scale and count of good steps, taken only when the run that wrote
  // it scaled (fp16); a checkpoint from a bf16, f32 or CPU run keeps the initial scale.
  void restore(bool saved_enabled, double scale, int64_t good_steps);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
  int64_t skipped_in_a_row_ = 0;
};

}  // namespace pmpl
