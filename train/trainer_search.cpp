// The trainer's side of the PMPL search: the architecture step on the held-out split, fixing
// enhancers (the decisions are ArchitectureSearch's, train/search.h) and the check that every
// process fixed the same.
#include <algorithm>
#include <functional>
#include <string_view>

#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "train/pmpl.h"
#include "train/trainer_impl.h"

namespace pmpl::trainer {

// The architecture split's next batch; its loader starts another epoch when one runs out.
data::Batch Trainer::next_arch_batch() {
  std::optional<data::Batch> batch = arch_loader_->next();
  if (!batch) {
    arch_loader_->start_epoch(++state_.arch_epoch);
    state_.arch_batch = 0;
    batch = arch_loader_->next();
  }
  ++state_.arch_batch;
  return std::move(*batch);
}

// One Adam step on the open alphas from an architecture batch: the weights are not differentiated
// (their part of the graph is not even recorded up to the first enhancer).
void Trainer::architecture_step() {
  const data::Batch batch = next_arch_batch();
  if (!search_->step([&] { return forward_loss(batch, nullptr); })) {
    ++arch_skipped_;
    check_overflows(search_->scaler(), "architecture gradients", "--arch-lr");
  }
}

// --select perturbation measures every open enhancer's candidates on the same held-out batches
// (the next --select-batches of the architecture split, copied and kept for the whole selection),
// the network in evaluation mode with batch statistics; every process adds its batches' losses, so
// all take the same decisions.
std::vector<FixDecision> Trainer::forced_decisions() {
  if (cfg_.select == "alpha") return search_->forced_decisions();
  const auto start = Clock::now();
  std::vector<data::Batch> batches;
  for (int64_t b = 0; b < cfg_.select_batches; ++b) {
    // A loader's batch lives in one of its slots until its next call: keep copies.
    data::Batch batch = next_arch_batch();
    batch.images = batch.images.clone();
    batch.labels = batch.labels.clone();
    batches.push_back(std::move(batch));
  }
  model_->eval();
  std::vector<FixDecision> decisions;
  {
    const NoGradGuard no_grad;
    decisions = search_->perturbation_decisions([&] {
      double sum = 0.0, images = 0.0;
      for (const data::Batch& batch : batches) {
        const double n = static_cast<double>(batch.labels.numel());
        sum += forward_loss(batch, nullptr).item() * n;
        images += n;
      }
      const std::vector<double> totals = sum_over_processes({sum, images}, comm_);
      return totals[0] / totals[1];
    });
  }
  model_->train();
  if (!decisions.empty()) {
    progress_.line(fmt::format("chose {} enhancers' ops by perturbation ({} held-out batches, loss {:.4f} as the "
                               "network stands, {} losses) in {}",
                               decisions.size(), cfg_.select_batches, decisions[0].loss,
                               2 + decisions.size() * kNumPoolOps, format_duration(seconds_since(start))));
  }
  return decisions;
}

// Fixes the decided enhancers (their batchnorms re-estimated on architecture batches; with
// --model-ema the average takes every tensor the fix rewrote), logs each.
void Trainer::fix(const std::vector<FixDecision>& decisions, const char* why) {
  if (decisions.empty()) return;
  const auto change = [&] {
    search_->fix(decisions, [&] {
      const data::Batch batch = next_arch_batch();
      return ops::normalize_images(batch.images.to(device_), kImageMean, kImageStd, compute_dtype_);
    });
  };
  if (ema_) ema_->follow(change);
  else change();
  for (const FixDecision& d : decisions) {
    const std::string chosen = Genotype::Entry{d.name, d.ops, d.removed}.label();
    // The lead of the first choice over the runner-up, in what decided it: probability or loss rise.
    const std::vector<double>& by = d.scores.empty() ? d.probs : d.scores;
    const std::vector<PoolOp> top = top_ops(by, 2);
    const double lead = lead_of(by);
    std::string evidence =
        d.gated_out   ? fmt::format("its gate chose none: q_none {:.3f}", d.gate[MetaPooling::kGateNone])
        : d.undecided ? fmt::format("undecided: {} led by {:.3f}, below --skip-undecided {}", pool_op_name(top[0]), lead,
                                  cfg_.skip_undecided)
        : d.scores.empty() ? fmt::format("lead {:.3f}", lead)
                           : fmt::format("removing it raises the loss by {:.2e}, {:.2e} more than {}",
                                       d.scores[static_cast<size_t>(d.ops[0])], lead, pool_op_name(top[1]));
    if (!d.gate.empty() && !d.gated_out) evidence += fmt::format(", q_keep {:.3f}", d.gate[MetaPooling::kGateKeep]);
    // The probability of what runs now (of the leader, for a removed enhancer).
    const PoolOp first = d.removed ? top[0] : d.ops[0];
    progress_.line(fmt::format("fixed {} to {} ({}, p = {:.3f}, {}, epoch {}, step {})", d.name, chosen, why,
                               d.probs[static_cast<size_t>(first)], evidence, state_.epoch + 1, state_.global_step));
    nlohmann::json event = {{"event", "fixed"}, {"name", d.name}, {"ops", chosen}, {"why", why}, {"epoch", state_.epoch},
                            {"step", state_.global_step}, {"probs", d.probs}};
    if (d.undecided) event["undecided"] = true;
    if (!d.gate.empty()) event["gate"] = d.gate;
    if (d.gated_out) event["gated_out"] = true;
    if (!d.scores.empty()) {
      event["loss_rise"] = d.scores;
      event["held_out_loss"] = d.loss;
    }
    log(event);
  }
  const auto undecided = std::count_if(decisions.begin(), decisions.end(), [](const FixDecision& d) { return d.undecided; });
  const auto gated_out = std::count_if(decisions.begin(), decisions.end(), [](const FixDecision& d) { return d.gated_out; });
  const auto guessed = static_cast<int64_t>(decisions.size()) - undecided - gated_out;
  if (std::string_view(why) == "forced" && cfg_.select == "alpha" && guessed > 0) {
    progress_.line(fmt::format("{} enhancers were fixed before their lead reached --fix-threshold {}: their ops are "
                               "the search's best guess so far, not a decision (docs/PMPL.md, \"Reading a search\", "
                               "says what a longer search does and does not change)",
                               guessed, cfg_.fix_threshold));
  }
  if (gated_out > 0) {
    progress_.line(fmt::format("{} enhancers were removed by their gates (q_none led q_keep): their blocks are the "
                               "backbone's", gated_out));
  }
  if (undecided > 0) {
    progress_.line(fmt::format("{} enhancers led by less than --skip-undecided {} and were {}", undecided,
                               cfg_.skip_undecided,
                               cfg_.undecided == "none" ? "removed: their blocks are the backbone's"
                                                        : "fixed to skip: they pool nothing"));
  }
  if (writer()) model_->genotype().save(cfg_.output + "/genotype.json");
}

// Every rank takes its fixing decisions alone, from identical alphas; after each searching step
// they are checked to agree (one small all-reduce), so a disagreement stops the job at once.
void Trainer::assert_same_genotype() {
  if (comm_.world() == 1) return;
  const std::string text = model_->genotype().to_json().dump();
  const double mine = static_cast<double>(std::hash<std::string>{}(text) % 1000003);
  const std::vector<double> sums = sum_over_processes({mine, mine * mine}, comm_);
  PMPL_ASSERT(sums[0] * sums[0] == comm_.world() * sums[1], "rank {}: the ranks fixed different ops (step {})",
              comm_.rank(), state_.global_step);
}

}  // namespace pmpl::trainer
