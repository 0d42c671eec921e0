#include "train/search.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/error.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "models/genotype.h"
#include "train/pmpl.h"
#include "train/recalibrate.h"

namespace pmpl {

double auto_arch_lr(int64_t steps) { return kArchLrScale / std::sqrt(static_cast<double>(std::max<int64_t>(steps, 1))); }

ArchitectureSearch::ArchitectureSearch(Module& network, Enhancers enhancers, ParameterGroup& arch,
                                       ParameterGroup& weights, const SearchOptions& options, bool fp16,
                                       Communicator& comm)
    : network_(network),
      enhancers_(std::move(enhancers)),
      arch_(arch),
      weights_(weights),
      options_(options),
      adam_(arch, options.adam),
      scaler_(fp16),
      comm_(comm) {}

bool ArchitectureSearch::open() const {
  return std::any_of(enhancers_.begin(), enhancers_.end(), [](const auto& e) { return !e.second->fixed(); });
}

bool ArchitectureSearch::step(const std::function<Tensor()>& loss) {
  const ProfileRange range("architecture step");
  weights_.set_requires_grad(false);
  arch_.zero_grad();
  scaler_.scale(loss()).backward();
  weights_.set_requires_grad(true);
  return step_from_gradients();
}

bool ArchitectureSearch::step_from_gradients() {
  if (comm_.world() > 1) {
    comm_.all_reduce_sum(arch_.grads());
    ops::scale_(arch_.grads(), 1.0 / comm_.world());
  }
  // The averaged gradients are the same on every rank, so every rank skips the same steps.
  const bool stepped = scaler_.unscale(arch_);
  if (stepped) {
    const Tensor& g = arch_.grads();
    grad_sum_ = grad_sum_.defined() ? ops::add(grad_sum_, g) : g.clone();
    grad_squares_ = grad_squares_.defined() ? ops::add(grad_squares_, ops::mul(g, g)) : ops::mul(g, g);
    ++grad_steps_;
    adam_.step();
    scaler_.step_taken();
  }
  // Rank 0's alphas everywhere: the fixing decisions, taken on every rank, then agree by
  // construction even if an all-reduce rounded differently on some rank.
  if (comm_.world() > 1) comm_.broadcast(arch_.values(), 0);
  return stepped;
}

int64_t ArchitectureSearch::offset_of(const Tensor& param) const {
  for (size_t i = 0; i < arch_.params().size(); ++i) {
    if (arch_.params()[i].tensor.raw_data() == param.raw_data()) return arch_.offset(i);
  }
  PMPL_ASSERT(false, "an enhancer's architecture parameter is not in the architecture group");
  return -1;
}

std::vector<FixDecision> ArchitectureSearch::open_enhancers() const {
  // One copy of all alphas and gates (on a GPU one wait, not one per enhancer); each open
  // enhancer's probabilities from its part, computed as MetaPooling::probabilities does.
  const std::vector<double> values = arch_.values().to(Device::cpu()).to(DType::kF64).to_vector<double>();
  const auto probabilities = [&](const Tensor& param) {
    const auto first = values.begin() + offset_of(param);
    return MetaPooling::probabilities_of(
        Tensor::from_vector(std::vector<double>(first, first + param.numel()), Shape{param.numel()}));
  };
  std::vector<FixDecision> out;
  for (const auto& [name, e] : enhancers_) {
    if (e->fixed()) continue;
    FixDecision d;
    d.name = name;
    d.enhancer = e;
    d.probs = probabilities(e->alpha());
    if (e->gated()) d.gate = probabilities(e->gate());
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

// How far q_keep leads q_none (negative where q_none leads).
double keep_lead(const FixDecision& d) {
  return d.gate[MetaPooling::kGateKeep] - d.gate[MetaPooling::kGateNone];
}

void remove_by_gate(FixDecision& d) {
  d.ops.clear();
  d.removed = d.gated_out = true;
}

}  // namespace

std::vector<FixDecision> ArchitectureSearch::threshold_decisions() const {
  const double gate_lead = gate_lead_for(options_.fix_threshold);
  std::vector<FixDecision> out;
  for (FixDecision& d : open_enhancers()) {
    if (!d.gate.empty() && keep_lead(d) <= -gate_lead) {
      remove_by_gate(d);
    } else if (d.gate.empty() || keep_lead(d) >= gate_lead) {
      const std::optional<PoolOp> op = fix_decision(d.probs, options_.fix_threshold);
      if (!op) continue;
      d.ops = {*op};
    } else {
      continue;
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<FixDecision> ArchitectureSearch::forced_decisions() const {
  const double gate_lead = gate_lead_for(options_.skip_undecided);
  std::vector<FixDecision> out = open_enhancers();
  for (FixDecision& d : out) {
    if (!d.gate.empty() && keep_lead(d) <= 0.0) {
      remove_by_gate(d);
      continue;
    }
    const bool gate_undecided = !d.gate.empty() && keep_lead(d) < gate_lead;
    d.undecided = gate_undecided || lead_of(d.probs) < options_.skip_undecided;
    d.removed = d.undecided && options_.remove_undecided;
    if (!d.removed) {
      d.ops = gate_undecided ? std::vector<PoolOp>{PoolOp::kSkip}
                             : forced_ops(d.probs, options_.fix_top, options_.skip_undecided);
    }
  }
  return out;
}

std::vector<FixDecision> ArchitectureSearch::perturbation_decisions(const std::function<double()>& loss) const {
  // softmax gives exactly 0 to an alpha this far below the rest, in f32 as in f64.
  constexpr double kRemoved = -1e4;
  std::vector<FixDecision> out = open_enhancers();
  if (out.empty()) return out;
  // Scored with batch statistics: mid-search the running ones lag the weights (at the peak of the
  // learning rate a search network scored 3.75 in evaluation mode against 1.89 training), and a
  // removal changes the statistics after it, which running ones gathered for the whole mixture
  // would charge to the candidate removed.
  const BatchStatisticsGuard batch_statistics(network_);
  const double base = loss();
  for (FixDecision& d : out) {
    Tensor alpha = d.enhancer->alpha();
    const Tensor saved = alpha.clone();
    const std::vector<double> values = saved.to(Device::cpu()).to(DType::kF64).to_vector<double>();
    for (int k = 0; k < kNumPoolOps; ++k) {
      std::vector<double> removed = values;
      removed[static_cast<size_t>(k)] = kRemoved;
      alpha.copy_(Tensor::from_vector(removed, alpha.shape()).to(alpha.dtype()).to(alpha.device()));
      d.scores.push_back(loss() - base);
    }
    alpha.copy_(saved);
    d.ops = top_ops(d.scores, options_.fix_top);
    d.loss = base;
  }
  // Every removal undone, the network must score as it did: otherwise the batches or the network
  // changed under the measurement (on the GPU the sums may round differently, hence the margin).
  const double again = loss();
  PMPL_ASSERT(std::abs(again - base) <= 1e-6 * std::max(1.0, std::abs(base)),
              "perturbation selection: the held-out loss was {} before the removals and {} after them; the "
              "batches or the network changed while they were measured",
              base, again);
  return out;
}

void ArchitectureSearch::deactivate(const std::string& name, const std::vector<PoolOp>& ops, bool removed) {
  arch_.deactivate(name + ".alpha");
  arch_.deactivate(name + ".gate");
  if (std::find(ops.begin(), ops.end(), PoolOp::kStrip) == ops.end()) weights_.deactivate(name + ".strip.");
  if (removed) weights_.deactivate(name + ".bn.");
}

void ArchitectureSearch::fix(const std::vector<FixDecision>& decisions, const std::function<Tensor()>& next_input) {
  std::vector<BatchNorm*> recalibrate;
  // A removal, or a gated enhancer dropping its input's share, changes what every batchnorm after
  // it sees.
  bool all = false;
  for (const FixDecision& d : decisions) {
    all = all || d.removed || d.enhancer->gated();
    if (d.removed) {
      d.enhancer->remove(/*fold=*/true);
    } else {
      d.enhancer->fix(d.ops);
      recalibrate.push_back(&d.enhancer->batchnorm());
    }
    deactivate(d.name, d.ops, d.removed);
  }
  if (all) recalibrate = batchnorms(network_);
  recalibrate_batchnorm(network_, recalibrate, kRecalibrationBatches, next_input);
}

void ArchitectureSearch::deactivate_fixed() {
  for (const auto& [name, e] : enhancers_) {
    if (e->fixed() && e->alpha().defined()) deactivate(name, e->fixed_ops(), e->removed());
  }
}

nlohmann::json ArchitectureSearch::report(bool take_gradients) {
  std::vector<double> sums, squares;
  if (take_gradients && grad_steps_ > 0) {
    sums = grad_sum_.to(Device::cpu()).to(DType::kF64).to_vector<double>();
    squares = grad_squares_.to(Device::cpu()).to(DType::kF64).to_vector<double>();
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, e] : enhancers_) {
    nlohmann::json probs = nlohmann::json::object();
    const std::vector<double> p = e->probabilities();
    for (size_t i = 0; i < p.size(); ++i) probs[std::string(pool_op_name(static_cast<PoolOp>(i)))] = p[i];
    nlohmann::json entry = {{"name", name}, {"probs", probs}, {"fixed", nullptr}};
    if (e->gated()) entry["keep"] = e->gate_probabilities()[MetaPooling::kGateKeep];
    if (e->fixed()) {
      nlohmann::json fixed = nlohmann::json::array();
      if (e->removed()) fixed.push_back(std::string(Genotype::kRemovedName));
      for (PoolOp op : e->fixed_ops()) fixed.push_back(std::string(pool_op_name(op)));
      entry["fixed"] = fixed.size() == 1 ? fixed[0] : fixed;
    }
    if (!e->fixed() && !sums.empty()) {
      std::vector<double> mean, rms;
      for (int k = 0; k < kNumPoolOps; ++k) {
        const auto at = static_cast<size_t>(offset_of(e->alpha()) + k);
        mean.push_back(sums[at] / static_cast<double>(grad_steps_));
        rms.push_back(std::sqrt(squares[at] / static_cast<double>(grad_steps_)));
      }
      entry["grad_mean"] = mean;
      entry["grad_rms"] = rms;
    }
    list.push_back(std::move(entry));
  }
  if (take_gradients) {
    grad_sum_ = grad_squares_ = Tensor();
    grad_steps_ = 0;
  }
  return list;
}

}  // namespace pmpl
