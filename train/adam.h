// Adam (torch.optim.Adam's update, weight decay added to the gradient) over a ParameterGroup's
// active parameters: the optimiser of the Meta-Pooling alphas.
//   g += wd * w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#pragma once

#include "train/parameters.h"

namespace pmpl {

struct AdamOptions {
  double lr = 3e-4;
  double beta1 = 0.5;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-3;
};

class Adam {
 public:
  Adam(ParameterGroup& group, AdamOptions options);
  void step();
  const Tensor& first_moment() const { return m_; }
  const Tensor& second_moment() const { return v_; }
  int64_t steps() const { return steps_; }
  void restore(const Tensor& m, const Tensor& v, int64_t steps);

 private:
  ParameterGroup& group_;
  AdamOptions options_;
  Tensor m_, v_;
  int64_t steps_ = 0;
};

}  // namespace pmpl
