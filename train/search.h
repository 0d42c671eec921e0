// The PMPL architecture search (DESIGN §4, docs/PMPL.md) over a network's Meta-Pooling enhancers:
// the architecture half of the first-order DARTS alternation, an Adam step on the open enhancers'
// alphas from the loss of an architecture batch (the weights are not differentiated), and
// progressive fixing: an enhancer whose top probability leads the second by the threshold is
// fixed for good to its argmax; at the force-fix epoch the trainer fixes the rest. Independent of
// the network and of the data, so the planted receptive-field test runs the trainer's search.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/comm.h"
#include "layers/meta_pooling.h"
#include "train/adam.h"
#include "train/loss_scale.h"
#include "train/parameters.h"

namespace pmpl {

// --arch-lr auto: the Adam learning rate of the alphas for a search of `steps` architecture
// steps, kArchLrScale / sqrt(steps). Adam moves an alpha by about lr * (mean / RMS of its
// gradient) per step, and its noise by about lr per step, so over the search the gap between two
// candidates grows like lr * steps * SNR and its noise like lr * sqrt(steps): at lr = c / sqrt(steps)
// the gap measures the evidence, c * SNR * sqrt(steps), the same at any budget, and the fixing
// threshold means the same confidence on Fashion-MNIST's 187 steps as on ImageNet's 100,000.
inline constexpr double kArchLrScale = 0.4;
double auto_arch_lr(int64_t steps);

// Batches a fix re-estimates the fixed enhancers' batchnorm statistics on (docs/PMPL.md: ~1,000
// images at batch 64, where the recovered accuracy stops growing).
inline constexpr int kRecalibrationBatches = 16;

struct SearchOptions {
  AdamOptions adam;
  double fix_threshold = 0.2;
  int fix_top = 1;
  double skip_undecided = 0.0;  // forced_ops' skip_below (train/pmpl.h)
  // --undecided none: such an enhancer is removed (genotype op "none") instead of fixed to skip.
  bool remove_undecided = false;
};

// Fix `enhancer` (named `name`) to `ops`; `probs` are its probabilities when decided.
struct FixDecision {
  std::string name;
  MetaPooling* enhancer = nullptr;
  std::vector<PoolOp> ops;
  std::vector<double> probs;
  // Decided by perturbation: per candidate, how much the loss rose when it left the mixture, and
  // the loss with nothing removed.
  std::vector<double> scores;
  double loss = 0.0;
  // Forced to skip, or removed (`removed`, `ops` empty), because the lead was below
  // --skip-undecided.
  bool undecided = false;
  bool removed = false;
  // A gated enhancer's gate probabilities {q_none, q_keep} when decided (empty without a gate),
  // and whether the gate removed it (`removed` too).
  std::vector<double> gate;
  bool gated_out = false;
};

class ArchitectureSearch {
 public:
  using Enhancers = std::vector<std::pair<std::string, MetaPooling*>>;
  // `enhancers` are inside `network`; `arch` holds their alphas, `weights` the rest (their strip
  // candidates included); `comm` averages the alphas' gradients over data-parallel processes and
  // spreads rank 0's alphas.
  ArchitectureSearch(Module& network, Enhancers enhancers, ParameterGroup& arch, ParameterGroup& weights,
                     const SearchOptions& options, bool fp16, Communicator& comm);

  // Whether some enhancer still searches.
  bool open() const;
  // One architecture step: `loss` computes an architecture batch's loss, during which only the
  // alphas take gradients. False when fp16 gradients overflowed and the step was skipped.
  bool step(const std::function<Tensor()>& loss);
  // The same step from gradients already in the alphas (--arch-grad train: the weight step's
  // backward made them, unscaled).
  bool step_from_gradients();
  // The open enhancers whose lead has reached the threshold, each to its argmax (one copy of all
  // alphas: on a GPU one wait). A gated enhancer is removed once q_none leads q_keep by
  // gate_lead_for(threshold), and fixed to its argmax only once q_keep leads by as much.
  std::vector<FixDecision> threshold_decisions() const;
  // Every open enhancer, to its top fix_top ops, or where its lead is below skip_undecided to skip
  // (or removed, with remove_undecided). A gated enhancer is removed where q_none >= q_keep, and
  // where q_keep leads by less than gate_lead_for(skip_undecided) is undecided as above.
  std::vector<FixDecision> forced_decisions() const;
  // Every open enhancer, to the fix_top candidates whose removal raises the loss most
  // (perturbation-based selection, DARTS-PT: Wang et al., ICLR 2021). `loss` is the mean loss of
  // one fixed set of held-out batches with the network as it stands (evaluation mode, no
  // gradients, the same on every process); meanwhile every batchnorm normalises with batch
  // statistics. It is measured once as it is, once per open enhancer and candidate with that
  // candidate's probability set to 0 (the others renormalised, so the mixture keeps its scale),
  // and once more as it is: a different answer then means the batches or the network moved under
  // the measurement, an internal error. Unlike the alphas, which score a candidate by the
  // gradient of moving the mixture towards it, this asks what the trained mixture actually uses.
  std::vector<FixDecision> perturbation_decisions(const std::function<double()>& loss) const;
  // Fixes each for good: the enhancer runs its ops alone (or, removed, passes its input through),
  // its alpha and (if strip is not chosen) its strip candidate's weights leave the optimisers, and
  // a removed one's batchnorm too. Then the fixed enhancers' batchnorms re-estimate their running
  // statistics on kRecalibrationBatches network inputs from `next_input` (architecture batches):
  // they were the mixture's, and an evaluation reading them after the fix would fall to chance
  // (docs/PMPL.md, "Fixing without a cliff"). After a removal every batchnorm does: those after it
  // gathered statistics of the enhancer's output, which is gone.
  void fix(const std::vector<FixDecision>& decisions, const std::function<Tensor()>& next_input);
  // After the enhancers were fixed from a checkpoint's record: the same deactivations as fix().
  void deactivate_fixed();

  // Per enhancer: probabilities and fixed ops; with `take_gradients` also, for the open ones, the
  // mean and RMS of each candidate's gradient over the architecture steps since the last such
  // report (their ratio is the signal the search has to go on).
  nlohmann::json report(bool take_gradients);

  Adam& adam() { return adam_; }
  LossScaler& scaler() { return scaler_; }

 private:
  void deactivate(const std::string& name, const std::vector<PoolOp>& ops, bool removed);
  // Where an architecture parameter (an alpha, a gate) starts in the group's flat buffers.
  int64_t offset_of(const Tensor& param) const;
  // Every open enhancer with its probabilities (and its gate's), `ops` still empty.
  std::vector<FixDecision> open_enhancers() const;

  Module& network_;
  Enhancers enhancers_;
  ParameterGroup& arch_;
  ParameterGroup& weights_;
  SearchOptions options_;
  Adam adam_;
  LossScaler scaler_;
  Communicator& comm_;
  Tensor grad_sum_, grad_squares_;  // since the last report, on the alphas' device
  int64_t grad_steps_ = 0;
};

}  // namespace pmpl
