// The end of an epoch: the last forced fix of a search, the state spread over the processes, the
// evaluation every --eval-interval epochs (and after the last), the epoch's log line and its
// checkpoints (the last, and the best by val top-1: of the weights' average with --model-ema).
#include <algorithm>

#include <fmt/format.h>

#include "train/trainer_impl.h"

namespace pmpl::trainer {

void Trainer::end_epoch(const EpochTotals& totals, EvalResult& last_eval) {
  const bool last = state_.epoch + 1 == cfg_.epochs;
  if (searching() && last) fix(forced_decisions(), "forced");  // the final genotype is complete
  double epoch_loss = totals.loss;
  if (comm_.world() > 1) epoch_loss = sum_over_processes({epoch_loss}, comm_)[0] / comm_.world();
  spread_state();
  nlohmann::json line = {{"type", "epoch"}, {"epoch", state_.epoch}, {"step", state_.global_step},
                         {"train_loss", epoch_loss / std::max<int64_t>(totals.steps, 1)},
                         {"seconds", seconds_since(totals.start)}};
  const bool evaluate_now = last || (state_.epoch + 1) % cfg_.eval_interval == 0;
  EvalResult ema_eval;
  if (evaluate_now) {
    const ProfileRange range("evaluate");
    last_eval = evaluate(*model_, *val_set_, eval_options());
    line["val_top1"] = last_eval.top1;
    line["val_top5"] = last_eval.top5;
    line["val_loss"] = last_eval.loss;
    if (ema_) {
      const ModelEma::Swap averaged(*ema_);
      ema_eval = evaluate(*model_, *val_set_, eval_options());
      line["val_top1_ema"] = ema_eval.top1;
      line["val_top5_ema"] = ema_eval.top5;
      line["val_loss_ema"] = ema_eval.loss;
    }
  }
  if (search_) line["enhancers"] = search_->report(false);
  log(line);
  progress_.line(fmt::format("epoch {}/{} done in {}: train loss {:.4f}{}{}", state_.epoch + 1, cfg_.epochs,
                             format_duration(seconds_since(totals.start)), epoch_loss / std::max<int64_t>(totals.steps, 1),
                             evaluate_now ? fmt::format(", val top-1 {:.2f}% top-5 {:.2f}%", 100 * last_eval.top1,
                                                        100 * last_eval.top5)
                                          : "",
                             evaluate_now && ema_ ? fmt::format("; EMA {:.2f}% / {:.2f}%", 100 * ema_eval.top1,
                                                                100 * ema_eval.top5)
                                                  : ""));
  ++state_.epoch;
  state_.batch = 0;
  // With --model-ema the best checkpoint is the one whose average scores best (timm's choice).
  const double score = ema_ ? ema_eval.top1 : last_eval.top1;
  const bool best = evaluate_now && score > state_.best_top1;
  if (best) state_.best_top1 = score;
  save(kLastCheckpoint);
  if (best) save("checkpoint-best.safetensors");
}

}  // namespace pmpl::trainer
