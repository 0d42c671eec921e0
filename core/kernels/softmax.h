// Softmax, log-softmax and label-smoothed cross-entropy over one row of k logits, written once for
// the CPU ops (engine/ops/softmax.cpp, cross_entropy.cpp: rows in parallel) and the CUDA kernels
// (cuda_kernels/reduce.cu: a thread per row). Max-shifted; exponentials summed in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/math.h"

namespace pmpl::kernels {

template <class T>
PMPL_HD T row_max(const T* x, int64_t k) {
  T m = x[0];
  for (int64_t j = 1; j < k; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// y = log_softmax(x) (log_out) or softmax(x).
template <class T>
PMPL_HD void softmax_row(const T* x, T* y, int64_t k, bool log_out) {
  const T m = row_max(x, k);
  double total = 0.0;
  for (int64_t j = 0; j < k; ++j) total += ::exp(static_cast<double>(x[j] - m));
  if (log_out) {
    const T shift = m + static_cast<T>(::log(total));
    for (int64_t j = 0; j < k; ++j) y[j] = x[j] - shift;
  } else {
    const double inv = 1.0 / total;
    for (int64_t j = 0; j < k; ++j) y[j] = static_cast<T>(::exp(static_cast<double>(x[j] - m)) * inv);
  }
}

// dx from the forward's output y and dy.
template <class T>
PMPL_HD void softmax_row_backward(const T* y, const T* gy, T* gx, int64_t k, bool log_out) {
  double dot = 0.0;
  if (log_out) {
    for (int64_t j = 0; j < k; ++j) dot += gy[j];
    for (int64_t j = 0; j < k; ++j) gx[j] = gy[j] - math::exp_of(y[j]) * static_cast<T>(dot);
  } else {
    for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(gy[j]) * y[j];
    for (int64_t j = 0; j < k; ++j) gx[j] = y[j] * (gy[j] - static_cast<T>(dot));
  }
}

// Writes the row's probabilities and returns its loss -sum_j q_j log p_j with
// q = (1 - eps) onehot(label) + eps / k; NaN for a label outside [0, k) (never read out of bounds).
template <class T>
PMPL_HD double cross_entropy_row(const T* x, int64_t label, int64_t k, double eps, T* probs) {
  const T m = row_max(x, k);
  double total = 0.0, logit_sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    total += ::exp(static_cast<double>(x[j] - m));
    logit_sum += static_cast<double>(x[j]);
  }
  const double log_z = static_cast<double>(m) + ::log(total);
  for (int64_t j = 0; j < k; ++j) probs[j] = static_cast<T>(::exp(x[j] - log_z));
  if (label < 0 || label >= k) return NAN;
  const double picked = static_cast<double>(x[label]) - log_z;
  const double mean_logp = logit_sum / static_cast<double>(k) - log_z;
  return -(1.0 - eps) * picked - eps * mean_logp;
}

// d loss / d logit j: (p_j - q_j) * scale_by, with smooth = eps / k and hit = 1 - eps.
template <class T>
PMPL_HD T cross_entropy_grad(T p, int64_t label, int64_t j, int64_t k, T smooth, T hit, T scale_by) {
  const T q = label >= 0 && label < k ? smooth + (j == label ? hit : T(0)) : T(NAN);
  return (p - q) * scale_by;
}

}  // namespace pmpl::kernels
