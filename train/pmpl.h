// Progressive fixing (DESIGN §4): an enhancer is fixed for good once the largest of its
// probabilities beats the second by at least `threshold`, to its argmax; the reference code's bug
// (always fixing candidate 1, strip, whatever wins) is exactly what this must not do. At the
// force-fix epoch every enhancer still open is fixed to its top-1, or top-2 summed.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "layers/meta_pooling.h"

namespace pmpl {

// The `k` most probable ops, most probable first (ties: the earlier candidate).
std::vector<PoolOp> top_ops(const std::vector<double>& probs, int k);

// The op to fix to now, or nothing while the lead is below `threshold`.
std::optional<PoolOp> fix_decision(const std::vector<double>& probs, double threshold);

// The lead of the most probable op over the second.
double lead_of(const std::vector<double>& probs);

// What a forced fix takes: the top `k` ops, or skip alone (the enhancer without pooling) where the
// lead is below `skip_below` (--skip-undecided: where the search has no evidence, pool nothing
// rather than guess; 0 keeps every guess). With --undecided none the search then removes such an
// enhancer instead (ArchitectureSearch::forced_decisions).
std::vector<PoolOp> forced_ops(const std::vector<double>& probs, int k, double skip_below);

// A gate's counterpart of a lead `t` among the eight candidates: the lead of two probabilities
// whose logits are as far apart as those of a top candidate leading seven equal others by t
// (t = 0.2: 0.5; t = 0.1: 0.31). A softmax over two turns a logit gap into a lead about 2.5x
// faster than one over eight, so the same t would let a gate decide on noise the alphas'
// threshold rejects: the alphas' Adam moves both the same distance per step.
double gate_lead_for(double t);

// --fix-remaining (pmpl eval, pmpl export) on a checkpoint taken mid-search: each enhancer still
// searching is fixed to its most probable op or, where it has a gate and q_none >= q_keep,
// removed (its input passed through, as the search's forced fix does).
struct RemainingFixes {
  std::vector<std::string> lines;    // what each took, for the user
  std::vector<BatchNorm*> fixed;     // the fixed enhancers' batchnorms (their statistics are the mixture's)
  bool all_batchnorms_stale = false;  // a removal or a gate changed what every later batchnorm sees
};
RemainingFixes fix_remaining(const std::vector<std::pair<std::string, MetaPooling*>>& enhancers);

}  // namespace pmpl
