// LAMB (You et al. 2019) as timm's Lamb does it, for the weights (`--opt lamb`): the gradients
// divided by max(||g|| / 1.0, 1) (its built-in clipping), Adam's bias-corrected moments, the
// direction plus weight decay on the decayed tensors, then each decayed tensor's step scaled by
// its trust ratio ||w|| / ||update|| (tensors without decay, batchnorm and biases, are not adapted).
// The norms are double sums; timm keeps the global one in a float32 scalar, so the two differ by
// float rounding (Train.LambMatchesTimm compares them with that scalar in float64).
#pragma once

#include "train/weight_optimizer.h"

namespace pmpl {

struct LambOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
};

class Lamb : public WeightOptimizer {
 public:
  Lamb(ParameterGroup& group, LambOptions options);
  std::string name() const override { return "lamb"; }
  void step(double lr) override;

 private:
  LambOptions options_;
  Tensor m_, v_;
  Tensor update_;  // scratch: each step's raw update before the trust ratio
};

}  // namespace pmpl
