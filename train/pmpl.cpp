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

double lead_of(const std::vector<double>& probs) {
  const std::vector<PoolOp> top = top_ops(probs, 2);
  return probs[static_cast<size_t>(top[0])] - probs[static_cast<size_t>(top[1])];
}

std::optional<PoolOp> fix_decision(const std::vector<double>& probs, double threshold) {
  if (lead_of(probs) >= threshold) return top_ops(probs, 1)[0];
  return std::nullopt;
}

std::vector<PoolOp> forced_ops(const std::vector<double>& probs, int k, double skip_below) {
  if (lead_of(probs) < skip_below) return {PoolOp::kSkip};
  return top_ops(probs, k);
}

}  // namespace pmpl
