// What the trainer tells its user and its log: the start line, the progress bar, a line every
// --log-interval steps (log.jsonl, and on a terminal-less run the console too).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/allocator.h"
#include "engine/cuda_runtime.h"
#include "train/trainer_impl.h"

namespace pmpl::trainer {

void Trainer::log(const nlohmann::json& line) {
  if (!writer()) return;
  log_ << line.dump() << "\n";
  log_.flush();
}

void Trainer::print_start(bool resuming) {
  const int64_t global_batch = cfg_.batch_size * comm_.world();
  progress_.line(fmt::format("pmpl train: {} {}{} on {} ({} classes; {} training images{}), {} epochs of {} steps, "
                             "batch {}, output {}{}",
                             cfg_.model, cfg_.width, cfg_.small_input ? " small-input" : "", cfg_.data, cfg_.num_classes,
                             train_images_, search_ ? fmt::format(", {} for the search, arch-lr {:.3g}", arch_images_, arch_lr_) : "",
                             cfg_.epochs, steps_per_epoch_,
                             comm_.world() == 1 ? std::to_string(cfg_.batch_size)
                                                : fmt::format("{} ({} per process x {} processes, {}{})", global_batch,
                                                              cfg_.batch_size, comm_.world(), comm_.backend(),
                                                              cfg_.sync_bn ? ", synchronised batchnorm" : ""),
                             cfg_.output,
                             resuming ? fmt::format(", resumed at epoch {} step {}", state_.epoch + 1, state_.global_step) : ""));
  if (!initial_weights_line_.empty()) progress_.line(initial_weights_line_);
  // Running statistics forget their start as (1 - momentum)^steps: under 5% takes 3 / momentum
  // steps, which a short run of MobileNetV3 (momentum 0.01) does not have. Said only where the
  // flag's suggestion, PyTorch's default 0.1, is a change.
  double momentum = 1.0;
  for (const auto& [name, m] : model_->modules()) {
    if (const auto* bn = dynamic_cast<const BatchNorm*>(m)) momentum = std::min(momentum, bn->momentum());
  }
  const int64_t steps = cfg_.epochs * steps_per_epoch_;
  if (cfg_.bn_momentum == 0.0 && momentum < 0.1 && static_cast<double>(steps) * momentum < 3.0) {
    progress_.line(fmt::format("note: {}'s batchnorm momentum {:g} needs ~{:.0f} steps for the running statistics to "
                               "follow the weights, and this run has {}: evaluation will lag training (--bn-momentum "
                               "0.1 for short runs)",
                               cfg_.model, momentum, 3.0 / momentum, steps));
  }
  progress_.line(fmt::format("{}optimiser {} lr {:g} weight decay {:g}; {:g} warm-up epochs, then {}{}",
                             cfg_.recipe.empty() ? "" : "recipe " + cfg_.recipe + ": ", optimizer_->name(), cfg_.lr,
                             cfg_.weight_decay, cfg_.warmup_epochs, schedule_->describe(),
                             cfg_.grad_accum == 1 ? ""
                                                  : fmt::format("; {} batches per optimiser step ({} steps per epoch)",
                                                                cfg_.grad_accum, updates_per_epoch_)));
  if (device_.is_cuda()) {
    progress_.line(fmt::format("device {} ({}), {}", device_.str(), cuda::device_name(),
                               compute_dtype_ == DType::kF32 ? std::string("f32")
                                                             : fmt::format("{} mixed precision{}", dtype_name(compute_dtype_),
                                                                           scaler_->enabled() ? " with loss scaling" : "")));
  }
}

// The progress bar after every step; every --log-interval steps and at the epoch's end a log
// line over the interval (summed over the processes), which then starts again.
void Trainer::report_step(StepInterval& interval, double lr) {
  const double elapsed = seconds_since(interval.start);
  // Every process's batches are the same size: this one's images times the number of processes.
  const double img_s = static_cast<double>(interval.images * comm_.world()) / std::max(elapsed, 1e-9);
  const int64_t global_batch = cfg_.batch_size * comm_.world();
  const double eta = static_cast<double>((cfg_.epochs - state_.epoch) * steps_per_epoch_ - state_.batch) *
                     static_cast<double>(global_batch) / std::max(img_s, 1e-9);
  progress_.update(state_.epoch, cfg_.epochs, state_.batch, steps_per_epoch_, interval.loss / interval.steps, img_s, eta);
  if (state_.global_step % cfg_.log_interval != 0 && state_.batch != steps_per_epoch_) return;
  if (comm_.world() > 1) {  // the interval over every process's batches
    const std::vector<double> sums = sum_over_processes(
        {interval.loss, static_cast<double>(interval.hits), static_cast<double>(interval.images)}, comm_);
    interval.loss = sums[0] / comm_.world();
    interval.hits = std::llround(sums[1]);
    interval.images = std::llround(sums[2]);
  }
  nlohmann::json line = {{"type", "step"}, {"epoch", state_.epoch}, {"step", state_.global_step},
                         {"lr", lr}, {"loss", interval.loss / interval.steps},
                         {"train_top1", static_cast<double>(interval.hits) / static_cast<double>(interval.images)},
                         {"img_per_s", img_s}, {"data_wait", interval.wait / std::max(elapsed, 1e-9)}};
  if (comm_.world() > 1) line["comm_wait"] = interval.comm / std::max(elapsed, 1e-9);
  if (device_.is_cuda()) {  // the caching allocator's high-water mark: headroom for --batch-size
    line["gpu_mem_peak_gib"] = static_cast<double>(cuda_allocator(device_.index).stats().peak_allocated) / (1 << 30);
  }
  if (scaler_->enabled()) {
    line["loss_scale"] = scaler_->value();
    line["skipped_steps"] = interval.skipped;
    if (searching() || arch_skipped_ > 0) line["arch_skipped_steps"] = arch_skipped_;
    arch_skipped_ = 0;
  }
  if (search_) line["enhancers"] = search_->report(true);
  log(line);
  if (!progress_.tty()) {
    progress_.line(fmt::format("epoch {}/{} step {}/{}  loss {:.4f}  top-1 {:.1f}%  lr {:.4g}  {:.0f} img/s  ETA {}",
                               state_.epoch + 1, cfg_.epochs, state_.batch, steps_per_epoch_,
                               interval.loss / interval.steps, 100.0 * interval.hits / interval.images, lr, img_s,
                               format_duration(eta)));
  }
  interval = StepInterval();
}

}  // namespace pmpl::trainer
