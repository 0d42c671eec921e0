#include "train/pmpl.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

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

double gate_lead_for(double t) {
  if (t <= 0.0) return 0.0;
  if (t >= 1.0) return 1.0;
  // The top's logit gap g over seven equal others: t = (e^g - 1) / (e^g + 7).
  const double odds = (1.0 + (kNumPoolOps - 1) * t) / (1.0 - t);
  return (odds - 1.0) / (odds + 1.0);  // two candidates g apart: tanh(g / 2)
}

RemainingFixes fix_remaining(const std::vector<std::pair<std::string, MetaPooling*>>& enhancers) {
  RemainingFixes out;
  for (const auto& [name, e] : enhancers) {
    if (e->fixed()) continue;
    out.all_batchnorms_stale = out.all_batchnorms_stale || e->gated();
    const std::vector<double> gate = e->gate_probabilities();
    if (!gate.empty() && gate[MetaPooling::kGateNone] >= gate[MetaPooling::kGateKeep]) {
      out.lines.push_back(fmt::format("{} was still searching: removed, as its gate chose (q_none {:.3f})", name,
                                      gate[MetaPooling::kGateNone]));
      e->remove(/*fold=*/true);
      continue;
    }
    const PoolOp op = top_ops(e->probabilities(), 1)[0];
    out.lines.push_back(fmt::format("{} was still searching: fixed to its most probable op, {}", name, pool_op_name(op)));
    e->fix({op});
    out.fixed.push_back(&e->batchnorm());
  }
  return out;
}

}  // namespace pmpl
