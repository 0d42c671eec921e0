// Per-element math shared by the CPU kernels and the CUDA kernels (PMPL_HD): the forward of each
// activation and its derivative, written once. Derivatives at the kinks follow PyTorch.
// Masks are bools converted to numbers and combined with bitwise &, never && or if: branchy
// forms stop GCC from vectorising the loops that call them, and then mispredict on random signs
// (a fused batchnorm + ReLU6 backward ran 10x slower that way).
#pragma once

#include <cmath>

#include "core/hd.h"

namespace pmpl::math {

// The C functions exist on both sides under these names; std:: overloads do not.
PMPL_HD float exp_of(float x) { return expf(x); }
PMPL_HD double exp_of(double x) { return ::exp(x); }

template <class T> PMPL_HD T relu(T x) { return x > T(0) ? x : T(0); }
template <class T> PMPL_HD T relu_grad(T x) { return static_cast<T>(x > T(0)); }

template <class T> PMPL_HD T relu6(T x) { return x < T(0) ? T(0) : (x > T(6) ? T(6) : x); }
// PyTorch's hardtanh backward: zero at and outside both edges.
template <class T> PMPL_HD T relu6_grad(T x) { return static_cast<T>((x > T(0)) & (x < T(6))); }

template <class T> PMPL_HD T hardsigmoid(T x) { return relu6(x + T(3)) / T(6); }
template <class T> PMPL_HD T hardsigmoid_grad(T x) {
  return static_cast<T>((x > T(-3)) & (x < T(3))) / T(6);
}

template <class T> PMPL_HD T hardswish(T x) { return x * relu6(x + T(3)) / T(6); }
template <class T> PMPL_HD T hardswish_grad(T x) {
  return x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1));
}

template <class T> PMPL_HD T sigmoid(T x) { return T(1) / (T(1) + exp_of(-x)); }
template <class T> PMPL_HD T sigmoid_grad(T x) {
  const T s = sigmoid(x);
  return s * (T(1) - s);
}

// SiLU (swish): x * sigmoid(x); derivative s * (1 + x * (1 - s)).
template <class T> PMPL_HD T silu(T x) { return x * sigmoid(x); }
template <class T> PMPL_HD T silu_grad(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

// The activation fused after a per-channel affine, by ops::ChannelActivation's number: 0 none,
// 1 relu6, 2 hardswish, 3 relu, 4 silu, 5 sigmoid, 6 hardsigmoid. With `act` a constant (the CPU's
// template loops) the switch folds away.
template <class T> PMPL_HD T channel_activation(T z, int act) {
  switch (act) {
    case 1: return relu6(z);
    case 2: return hardswish(z);
    case 3: return relu(z);
    case 4: return silu(z);
    case 5: return sigmoid(z);
    case 6: return hardsigmoid(z);
    default: return z;
  }
}
template <class T> PMPL_HD T channel_activation_grad(T z, int act) {
  switch (act) {
    case 1: return relu6_grad(z);
    case 2: return hardswish_grad(z);
    case 3: return relu_grad(z);
    case 4: return silu_grad(z);
    case 5: return sigmoid_grad(z);
    case 6: return hardsigmoid_grad(z);
    default: return T(1);
  }
}

}  // namespace pmpl::math
