// AdamW (torch.optim.AdamW, timm's adamw) for the weights: decoupled weight decay, on the group's
// decayed weights only (w *= 1 - lr * wd), then Adam's bias-corrected update without L2 decay.
// The alphas' optimiser is train/adam.h (L2 decay, a fixed learning rate).
#pragma once

#include "train/weight_optimizer.h"

namespace pmpl {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.05;
};

class AdamW : public WeightOptimizer {
 public:
  AdamW(ParameterGroup& group, AdamWOptions options);
  std::string name() const override { return "adamw"; }
  void step(double lr) override;

 private:
  AdamWOptions options_;
  Tensor m_, v_;
};

}  // namespace pmpl
