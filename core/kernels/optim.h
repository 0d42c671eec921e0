// The optimisers' per-element updates, written once for the CPU loops (train/sgd.cpp,
// train/adam.cpp) and the CUDA kernels (cuda_kernels/optim.cu): with FMA contraction off on both
// sides, a step on the GPU equals the CPU's bit for bit.
#pragma once

#include <cmath>

#include "core/hd.h"

namespace pmpl::kernels {

// SGD with momentum (torch.optim.SGD): d = g + wd * w, buf = first ? d : mu * buf + d,
// w -= lr * (nesterov ? d + mu * buf : buf). `decay` is false past the group's weights.
template <class T>
PMPL_HD void sgd_update(T& w, T g, T& buf, T lr, T mu, T wd, bool decay, bool nesterov, bool first) {
  const T d = g + (decay ? wd * w : T(0));
  const T b = first ? d : mu * buf + d;
  buf = b;
  w -= lr * (nesterov ? d + mu * b : b);
}

PMPL_HD float sqrt_of(float x) { return sqrtf(x); }
PMPL_HD double sqrt_of(double x) { return ::sqrt(x); }

// Adam (torch.optim.Adam, L2 weight decay): step_size = lr / (1 - b1^t), root_c2 = sqrt(1 - b2^t).
template <class T>
PMPL_HD void adam_update(T& w, T g, T& m, T& v, T b1, T b2, T wd, T eps, T step_size, T root_c2) {
  const T d = g + wd * w;
  m = b1 * m + (T(1) - b1) * d;
  v = b2 * v + (T(1) - b2) * d * d;
  w -= step_size * m / (sqrt_of(v) / root_c2 + eps);
}

}  // namespace pmpl::kernels
