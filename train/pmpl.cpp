#include "train/pmpl.h"

#include <algorithm>
#include <numeric>

#include "engine/error.h"

namespace pmpl {

std::vector<PoolOp> top_ops(const std::vector<double>& probs, int k) {
  PMPL_ASSERT(probs.size() == static_cast<size_t>(kNumPoolOps) && k >= 1 && k <= kNumPoolOps,
              "top_ops: {} probabilities, k = {}", probs.size(), k);
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  std::vector<PoolOp> out;
  for (int i = 0; i < k; ++i) out.push_back(static_cast<PoolOp>(order[static_cast<size_t>(i)]));
  return out;
}

std::optional<PoolOp> fix_decision(const std::vector<double>& probs, double threshold) {
  const std::vector<PoolOp> top = top_ops(probs, 2);
  const double lead = probs[static_cast<size_t>(top[0])] - probs[static_cast<size_t>(top[1])];
  if (lead >= threshold) return top[0];
  return std::nullopt;
}

}  // namespace pmpl
