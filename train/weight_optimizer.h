// The weights' optimiser, chosen by `pmpl train --opt`: SGD (train/sgd.h), timm's RMSpropTF
// (train/rmsprop_tf.h), AdamW (train/adamw.h) or timm's Lamb (train/lamb.h), each over a packed ParameterGroup whose
// decayed weights come first. The trainer sees this interface only: a step at the schedule's
// learning rate, and the state a checkpoint keeps.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/parameters.h"

namespace pmpl {

class WeightOptimizer {
 public:
  explicit WeightOptimizer(ParameterGroup& group) : group_(group) {}
  virtual ~WeightOptimizer() = default;
  // The --opt name.
  virtual std::string name() const = 0;
  virtual void step(double lr) = 0;
  int64_t steps() const { return steps_; }
  // The state tensors, each named as a checkpoint stores it (optim.weights.<name>).
  const std::vector<std::pair<std::string, Tensor>>& state() const { return state_; }
  // A checkpoint's state, in state()'s order (each size-checked), and its step count.
  void restore(const std::vector<Tensor>& state, int64_t steps);

 protected:
  // A state tensor shaped like the group's values, filled with `init` (none for an empty group).
  Tensor add_state(const std::string& name, double init);

  ParameterGroup& group_;
  int64_t steps_ = 0;

 private:
  std::vector<std::pair<std::string, Tensor>> state_;
};

struct WeightOptimizerOptions {
  std::string kind = "sgd";  // sgd, rmsproptf, adamw, lamb
  double momentum = 0.9;     // sgd, rmsproptf
  bool nesterov = true;      // sgd
  double weight_decay = 4e-5;
  double eps = -1.0;         // rmsproptf, adamw, lamb; < 0: the optimiser's default
  double beta1 = 0.9, beta2 = 0.999;  // adamw, lamb
};

// The --opt choices, for help text and errors.
inline constexpr const char* kWeightOptimizers = "sgd, rmsproptf, adamw or lamb";
std::unique_ptr<WeightOptimizer> make_weight_optimizer(ParameterGroup& group, const WeightOptimizerOptions& options);

}  // namespace pmpl
