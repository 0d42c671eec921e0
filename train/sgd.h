// SGD with momentum, Nesterov and decoupled-from-BN weight decay, over a packed ParameterGroup.
// The update is PyTorch's torch.optim.SGD, element by element:
//   g = grad + wd * w (wd only on the group's weights), buf = momentum * buf + g (buf = g on the
//   first step), step = nesterov ? g + momentum * buf : buf, w -= lr * step.
#pragma once

#include "train/weight_optimizer.h"

namespace pmpl {

struct SgdOptions {
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 4e-5;
};

class Sgd : public WeightOptimizer {
 public:
  Sgd(ParameterGroup& group, SgdOptions options);
  std::string name() const override { return "sgd"; }
  void step(double lr) override;
  const Tensor& momentum_buffer() const { return buffer_; }

 private:
  SgdOptions options_;
  Tensor buffer_;
};

}  // namespace pmpl
