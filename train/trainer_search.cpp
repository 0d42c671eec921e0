// The trainer's side of the PMPL search: the architecture step on the held-out split, fixing
// enhancers (the decisions are ArchitectureSearch's, train/search.h) and the check that every
// process fixed the same.
#include <functional>
#include <string_view>

#include <fmt/format.h>

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

// Fixes the decided enhancers (their batchnorms re-estimated on architecture batches), logs each.
void Trainer::fix(const std::vector<FixDecision>& decisions, const char* why) {
  if (decisions.empty()) return;
  search_->fix(decisions, [&] {
    const data::Batch batch = next_arch_batch();
    return ops::normalize_images(batch.images.to(device_), kImageMean, kImageStd, compute_dtype_);
  });
  for (const FixDecision& d : decisions) {
    std::string chosen;
    for (PoolOp op : d.ops) {
      if (!chosen.empty()) chosen += '+';
      chosen += pool_op_name(op);
    }
    const std::vector<PoolOp> top = top_ops(d.probs, 2);
    const double lead = d.probs[static_cast<size_t>(top[0])] - d.probs[static_cast<size_t>(top[1])];
    progress_.line(fmt::format("fixed {} to {} ({}, p = {:.3f}, lead {:.3f}, epoch {}, step {})", d.name, chosen, why,
                               d.probs[static_cast<size_t>(d.ops[0])], lead, state_.epoch + 1, state_.global_step));
    log({{"event", "fixed"}, {"name", d.name}, {"ops", chosen}, {"why", why}, {"epoch", state_.epoch},
         {"step", state_.global_step}, {"probs", d.probs}});
  }
  if (std::string_view(why) == "forced") {
    progress_.line(fmt::format("{} enhancers were fixed before their lead reached --fix-threshold {}: their ops are "
                               "the search's best guess so far, not a decision (docs/PMPL.md, \"Reading a search\", "
                               "says what a longer search does and does not change)",
                               decisions.size(), cfg_.fix_threshold));
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
