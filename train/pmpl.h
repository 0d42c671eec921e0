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

}  // namespace pmpl
