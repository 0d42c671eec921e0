// SGD with momentum, Nesterov and decoupled-from-BN weight decay, over a packed ParameterGroup.
// The update is PyTorch's torch.optim.SGD, element by element:
//   g = grad + wd * w (wd only on the group's weights), buf = momentum * buf + g (buf = g on the
//   first step), step = nesterov ? g + momentum * buf : buf, w -= lr * step.
#pragma once

#include "train/parameters.h"

namespace pmpl {

struct SgdOptions {
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 4e-5;
};

class Sgd {
 public:
  Sgd(ParameterGroup& group, SgdOptions options);
  void step(double lr);
  const Tensor& momentum_buffer() const { return buffer_; }
  int64_t steps() const { return steps_; }
  // For resuming: the momentum buffer and step count of a checkpoint.
  void restore(const Tensor& buffer, int64_t steps);

 private:
  ParameterGroup& group_;
  SgdOptions options_;
  Tensor buffer_;
  int64_t steps_ = 0;
};

}  // namespace pmpl
