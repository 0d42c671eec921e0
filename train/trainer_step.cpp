// The trainer's weight step: forward, loss, backward (gradients all-reduced as they are made),
// loss scaling, clipping, SGD, and the checks that stop a diverged run before it saves.
#include <cmath>
#include <optional>

#include "engine/ops.h"
#include "train/mixed_loss.h"
#include "train/trainer_impl.h"

namespace pmpl::trainer {

Tensor Trainer::forward_loss(const data::Batch& batch, Tensor* logits) {
  Tensor input = ops::normalize_images(batch.images.to(device_), kImageMean, kImageStd, compute_dtype_);
  if (batch.erase_boxes.defined()) {
    ops::erase_boxes_(input, batch.erase_boxes.to(device_), batch.erase_keys.to(device_),
                      static_cast<int>(batch.erase_fill));
  }
  const Tensor out = model_->forward(input);
  if (logits != nullptr) *logits = out;
  // The labels go up with the images, so the loss needs no copy (and no wait) mid-step.
  if (batch.row_lambdas.defined()) {
    return mixed_cross_entropy_rows(out, batch.labels, batch.partner_labels, batch.row_lambdas, cfg_.label_smoothing);
  }
  if (batch.lambda == 1.0) return ops::cross_entropy(out, batch.labels.to(device_), cfg_.label_smoothing);
  return mixed_cross_entropy(out, batch.labels.to(device_), batch.partner_labels.to(device_), batch.lambda,
                             cfg_.label_smoothing);
}

// One clear stop when a loss scaler gives up (LossScaler::gave_up).
void Trainer::check_overflows(const LossScaler& scaler, const char* what, const char* lr_flag) const {
  PMPL_CHECK(!scaler.gave_up(),
             "fp16 {} overflowed in {} steps in a row (loss scale now {:g}) at epoch {} step {}: use --amp bf16, or "
             "lower {}",
             what, scaler.skipped_in_a_row(), scaler.value(), state_.epoch + 1, state_.batch + 1, lr_flag);
}

// An update's start: the weights' gradients (and, one-level, the alphas') zeroed for the
// micro-batches to accumulate into.
void Trainer::begin_update() {
  // --arch-grad train: the same backwards give the alphas their gradient (one-level search).
  const bool one_level = alphas_move() && cfg_.arch_grad == "train";
  arch_->set_requires_grad(one_level);
  if (one_level) arch_->zero_grad();
  weights_->zero_grad();
}

// One micro-batch of an update: forward, and backward of its loss weighted by `weight` (1 / the
// update's micro-batches, so the sum is the gradient of their mean loss). Only the update's last
// backward all-reduces (the buffer then holds every micro-batch's share). Returns the unweighted
// loss, not yet read: on a GPU the host waits once per update, at its end.
Tensor Trainer::accumulate(const data::Batch& batch, double weight, bool last, StepInterval& interval, Tensor* logits) {
  const Tensor loss = forward_loss(batch, logits);
  const Tensor scaled = scaler_->scale(weight == 1.0 ? loss : ops::scale(loss, weight));
  if (last) {
    reducer_->backward(scaled);
    interval.comm += reducer_->last_wait_seconds();
  } else {
    scaled.backward();
  }
  return loss;
}

// The update from the accumulated gradients (clipped, unscaled, stepped, averaged into the EMA);
// returns the mean of the micro-batches' losses.
double Trainer::finish_update(const std::vector<Tensor>& losses, double lr, StepInterval& interval) {
  const bool one_level = alphas_move() && cfg_.arch_grad == "train";
  arch_->set_requires_grad(true);
  if (one_level && !search_->step_from_gradients()) ++arch_skipped_;
  const bool stepped = scaler_->unscale(*weights_);
  Tensor squares;  // the gradients' sum of squares, if clipping measured it (read below)
  if (stepped) {
    squares = weights_->clip_gradients(cfg_.clip_grad);
    optimizer_->step(lr);
    if (ema_) ema_->update(optimizer_->steps());
    scaler_->step_taken();
  } else {
    ++interval.skipped;
    check_overflows(*scaler_, "gradients", "--lr");
  }
  // A divergence stops before anything is saved, so the last checkpoint stays good. Gradients
  // first: they are the same on every rank (averaged), so every rank stops at the same step.
  // (With fp16 the scaler has checked them and skipped the step instead.)
  double loss_value = 0.0;
  for (const Tensor& loss : losses) loss_value += loss.item();
  loss_value /= static_cast<double>(losses.size());
  if (!scaler_->enabled()) {
    const double sum = squares.defined() ? squares.item() : weights_->grad_sum_squares();
    PMPL_CHECK(std::isfinite(sum),
               "the gradients became {} at epoch {} step {} (global step {}): lower --lr or --clip-grad; the "
               "last good checkpoint, {}/{}, is intact",
               sum, state_.epoch + 1, state_.batch + 1, state_.global_step + 1, cfg_.output, kLastCheckpoint);
  }
  PMPL_CHECK(!stepped || std::isfinite(loss_value),
             "the loss became {} at epoch {} step {} (global step {}): lower --lr or --clip-grad; the last "
             "good checkpoint, {}/{}, is intact",
             loss_value, state_.epoch + 1, state_.batch + 1, state_.global_step + 1, cfg_.output, kLastCheckpoint);
  return loss_value;
}

}  // namespace pmpl::trainer
