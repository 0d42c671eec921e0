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

// LAMB (timm's Lamb, You et al. 2019): the moments of the clipped gradient g, and the raw update
// u = m / c1 / (sqrt(v) / root_c2 + eps) + wd * w, which each parameter tensor then scales by its
// trust ratio ||w|| / ||u|| (lamb_trust_ratio) before w -= lr * u.
template <class T>
PMPL_HD T lamb_direction(T w, T g, T& m, T& v, T b1, T b2, T c1, T root_c2, T eps, T wd) {
  m = b1 * m + (T(1) - b1) * g;
  v = b2 * v + (T(1) - b2) * g * g;
  return (m / c1) / (sqrt_of(v) / root_c2 + eps) + wd * w;
}

// timm: 1 where the tensor does not adapt (no weight decay) or either norm is 0.
PMPL_HD double lamb_trust_ratio(double w_squares, double u_squares, bool adapt) {
  if (!adapt || w_squares <= 0.0 || u_squares <= 0.0) return 1.0;
  return ::sqrt(w_squares) / ::sqrt(u_squares);
}

// AdamW (torch.optim.AdamW): w *= keep (1 - lr * wd on decayed weights, else 1), then Adam's
// update without L2 decay.
template <class T>
PMPL_HD void adamw_update(T& w, T g, T& m, T& v, T b1, T b2, T keep, T eps, T step_size, T root_c2) {
  w *= keep;
  adam_update(w, g, m, v, b1, b2, T(0), eps, step_size, root_c2);
}

// RMSprop in TensorFlow's form (timm's RMSpropTF, lr_in_momentum, not centered): the square
// average starts at 1 and eps is added inside the root; the learning rate goes into the
// momentum buffer, so a schedule's change of lr reaches the weights gradually, as in TF.
//   d = g + wd * w, sq += (1 - rho) * (d^2 - sq), buf = mu * buf + lr * d / sqrt(sq + eps), w -= buf.
template <class T>
PMPL_HD void rmsprop_tf_update(T& w, T g, T& sq, T& buf, T lr, T rho, T mu, T wd, T eps, bool decay) {
  const T d = g + (decay ? wd * w : T(0));
  sq += (T(1) - rho) * (d * d - sq);
  buf = mu * buf + lr * d / sqrt_of(sq + eps);
  w -= buf;
}

}  // namespace pmpl::kernels
