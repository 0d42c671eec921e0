// RMSprop as TensorFlow runs it, timm's RMSpropTF (the optimiser of timm's MobileNetV2 and of the
// Meta-Pooling reference code's ImageNet recipe): the square average starts at 1, eps goes inside
// the square root, and the learning rate into the momentum buffer. Per element
// (core/kernels/optim.h):
//   d = g + wd * w (wd on the group's weights), sq = sq + (1 - rho) * (d^2 - sq),
//   buf = momentum * buf + lr * d / sqrt(sq + eps), w -= buf.
// rho is timm's alpha, fixed at 0.9 there (kRho); timm's default eps is 1e-10, its MobileNetV2
// recipes pass --opt-eps 1e-3.
#pragma once

#include "train/weight_optimizer.h"

namespace pmpl {

struct RmspropTfOptions {
  double momentum = 0.9;
  double weight_decay = 1e-5;
  double eps = 1e-10;
};

class RmspropTf : public WeightOptimizer {
 public:
  static constexpr double kRho = 0.9;

  RmspropTf(ParameterGroup& group, RmspropTfOptions options);
  std::string name() const override { return "rmsproptf"; }
  void step(double lr) override;

 private:
  RmspropTfOptions options_;
  Tensor square_avg_, buffer_;
};

}  // namespace pmpl
