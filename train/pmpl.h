// Progressive fixing (DESIGN §4): an enhancer is fixed for good once the largest of its
// probabilities beats the second by at least `threshold`, to its argmax; the reference code's bug
// (always fixing candidate 1, strip, whatever wins) is exactly what this must not do. At the
// force-fix epoch every enhancer still open is fixed to its top-1, or top-2 summed.
#pragma once

#include <optional>
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

}  // namespace pmpl
