#include "train/weight_optimizer.h"

#include "engine/error.h"
#include "train/adamw.h"
#include "train/lamb.h"
#include "train/rmsprop_tf.h"
#include "train/sgd.h"

namespace pmpl {

std::unique_ptr<WeightOptimizer> make_weight_optimizer(ParameterGroup& group, const WeightOptimizerOptions& o) {
  if (o.kind == "sgd") return std::make_unique<Sgd>(group, SgdOptions{o.momentum, o.nesterov, o.weight_decay});
  if (o.kind == "rmsproptf") {
    RmspropTfOptions r{o.momentum, o.weight_decay};
    if (o.eps >= 0) r.eps = o.eps;
    return std::make_unique<RmspropTf>(group, r);
  }
  if (o.kind == "adamw") {
    AdamWOptions a{o.beta1, o.beta2};
    if (o.eps >= 0) a.eps = o.eps;
    a.weight_decay = o.weight_decay;
    return std::make_unique<AdamW>(group, a);
  }
  if (o.kind == "lamb") {
    LambOptions l{o.beta1, o.beta2};
    if (o.eps >= 0) l.eps = o.eps;
    l.weight_decay = o.weight_decay;
    return std::make_unique<Lamb>(group, l);
  }
  PMPL_CHECK(false, "--opt {} is not an optimiser pmpl has: use {}", o.kind, kWeightOptimizers);
  return nullptr;
}

void WeightOptimizer::restore(const std::vector<Tensor>& state, int64_t steps) {
  PMPL_ASSERT(state.size() == state_.size(), "{}: {} state tensors for {}", name(), state.size(), state_.size());
  for (size_t i = 0; i < state.size(); ++i) {
    Tensor& mine = state_[i].second;
    if (!mine.defined()) continue;  // an empty group: nothing to restore
    PMPL_CHECK(state[i].shape() == mine.shape(), "{} {} of {} elements does not fit {}", name(), state_[i].first,
               state[i].numel(), mine.numel());
    mine.copy_(state[i]);
  }
  steps_ = steps;
}

Tensor WeightOptimizer::add_state(const std::string& name, double init) {
  Tensor t;
  if (!group_.empty()) {
    t = zeros_like(group_.values());
    if (init != 0.0) t.fill_(init);
  }
  state_.emplace_back(name, t);
  return t;
}

}  // namespace pmpl
