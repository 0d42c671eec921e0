// The trainer's epoch loop; its parts are in train/trainer_*.cpp (train/trainer_impl.h lists them).
#include <filesystem>
#include <optional>

#include "train/trainer_impl.h"

namespace pmpl {
namespace trainer {

namespace fs = std::filesystem;

TrainResult Trainer::run() {
  if (cfg_.output.empty() && !cfg_.resume.empty() && fs::is_directory(cfg_.resume)) cfg_.output = cfg_.resume;
  prepare();
  const bool resuming = !cfg_.resume.empty();
  PMPL_CHECK(resuming || (!fs::exists(cfg_.output + "/" + kLastCheckpoint) &&
                          !fs::exists(cfg_.output + "/" + kPreviousCheckpoint)),
             "{} already holds a run: continue it with --resume {}, or choose another --output", cfg_.output,
             cfg_.output);
  if (writer()) fs::create_directories(cfg_.output);
  if (resuming) resume(cfg_.resume);
  else write_config();
  spread_state();
  if (writer()) {
    log_.open(cfg_.output + "/log.jsonl", std::ios::app);
    PMPL_CHECK(log_.good(), "cannot write {}/log.jsonl", cfg_.output);
  }
  if (!resume_warning_.is_null()) log(resume_warning_);

  if (search_) arch_loader_->start_epoch(state_.arch_epoch, state_.arch_batch);
  print_start(resuming);
  model_->train();
  TrainResult result;
  EvalResult last_eval;
  while (state_.epoch < cfg_.epochs) {
    if (searching() && state_.epoch >= cfg_.force_fix_epoch) fix(forced_decisions(), "forced");
    loader_->start_epoch(state_.epoch, state_.batch);
    StepInterval interval;
    EpochTotals totals;
    // One update per --grad-accum batches (the epoch's last group may be shorter): each batch is
    // read, run forward and backward before the next (the loader's batches are views valid until
    // then), the optimiser steps once at the group's end.
    while (state_.batch < steps_per_epoch_) {
      const int64_t group = std::min<int64_t>(cfg_.grad_accum, steps_per_epoch_ - state_.batch);
      profile_.before(state_.global_step + 1);
      std::optional<ProfileRange> step_range(std::in_place, "train step");
      if (alphas_move() && cfg_.arch_grad == "held-out") architecture_step();
      const double lr = schedule_->at(state_.global_step);
      begin_update();
      std::vector<Tensor> losses;
      for (int64_t k = 0; k < group; ++k) {
        const auto wait_start = Clock::now();
        std::optional<data::Batch> batch = loader_->next();
        interval.wait += seconds_since(wait_start);
        PMPL_ASSERT(batch.has_value(), "the loader ended its epoch at batch {} of {}", state_.batch + k,
                            steps_per_epoch_);
        Tensor logits;
        losses.push_back(accumulate(*batch, 1.0 / static_cast<double>(group), k == group - 1, interval, &logits));
        interval.hits += count_top_k(logits, batch->labels, 1);
        interval.images += logits.dim(0);
      }
      const double loss = finish_update(losses, lr, interval);
      if (searching()) {
        fix(search_->threshold_decisions(), "threshold");
        assert_same_genotype();
      }
      ++state_.global_step;
      state_.batch += group;
      step_range.reset();
      profile_.after(state_.global_step);
      interval.loss += loss;
      totals.loss += loss;
      ++interval.steps;
      ++totals.steps;
      report_step(interval, lr);
      if (cfg_.max_steps > 0 && state_.global_step >= cfg_.max_steps) {
        result.steps = state_.global_step;
        return result;  // as if killed: nothing more is written
      }
      if (cfg_.save_interval > 0 && state_.global_step % cfg_.save_interval == 0) save(kLastCheckpoint);
    }
    end_epoch(totals, last_eval);
  }
  if (search_ && writer()) model_->genotype().save(cfg_.output + "/genotype.json");
  result.val_top1 = last_eval.top1;
  result.val_top5 = last_eval.top5;
  result.steps = state_.global_step;
  result.completed = true;
  return result;
}

}  // namespace trainer

nlohmann::json TrainConfig::to_json() const {
  return {{"data", data}, {"output", output}, {"resume", resume}, {"device", device}, {"model", model},
          {"width", width}, {"num_classes", num_classes}, {"small_input", small_input}, {"genotype", genotype}, {"initial_checkpoint", initial_checkpoint},
          {"dropout", dropout}, {"drop_path", drop_path}, {"bn_momentum", bn_momentum}, {"epochs", epochs}, {"batch_size", batch_size}, {"grad_accum", grad_accum}, {"recipe", recipe}, {"opt", opt}, {"lr", lr},
          {"sched", sched}, {"lr_step_size", lr_step_size}, {"lr_gamma", lr_gamma}, {"lr_per_step", lr_per_step},
          {"warmup_epochs", warmup_epochs}, {"min_lr", min_lr}, {"weight_decay", weight_decay}, {"decay_norm_and_bias", decay_norm_and_bias},
          {"momentum", momentum}, {"nesterov", nesterov}, {"opt_eps", opt_eps}, {"opt_betas", {opt_beta1, opt_beta2}}, {"model_ema", model_ema}, {"model_ema_decay", model_ema_decay}, {"model_ema_warmup", model_ema_warmup},
          {"label_smoothing", label_smoothing},
          {"clip_grad", clip_grad}, {"input_size", input_size}, {"crop_scale", crop_scale}, {"auto_augment", auto_augment}, {"color_jitter", color_jitter}, {"reprob", reprob}, {"remode", remode}, {"recount", recount}, {"mixup", mixup}, {"cutmix", cutmix}, {"mixup_prob", mixup_prob}, {"mixup_switch_prob", mixup_switch_prob}, {"mixup_mode", mixup_mode}, {"workers", workers}, {"seed", seed},
          {"arch_lr", arch_lr > 0 ? nlohmann::json(arch_lr) : nlohmann::json("auto")}, {"arch_betas", {arch_beta1, arch_beta2}}, {"arch_wd", arch_wd},
          {"arch_split", arch_split}, {"fix_threshold", fix_threshold}, {"arch_start_epoch", arch_start_epoch}, {"arch_grad", arch_grad}, {"force_fix_epoch", force_fix_epoch},
          {"fix_top", fix_top}, {"skip_undecided", skip_undecided}, {"undecided", undecided}, {"gate", gate}, {"select", select}, {"select_batches", select_batches}, {"eval_interval", eval_interval}, {"log_interval", log_interval},
          {"save_interval", save_interval}, {"on_save_error", on_save_error}, {"limit_train", limit_train}, {"limit_val", limit_val}, {"amp", amp},
          {"sync_bn", sync_bn}, {"bucket_mb", bucket_mb}, {"comm_timeout", comm_timeout},
          {"profile_steps", profile_steps}};
}

TrainResult run_training(const TrainConfig& config) { return trainer::Trainer(config).run(); }

}  // namespace pmpl
