// Per-element math shared by the CPU kernels and the CUDA kernels (PMPL_HD): the forward of each
// activation and its derivative, written once. Derivatives at the kinks follow PyTorch.
// Masks are bools converted to numbers and combined with bitwise &, never && or if: branchy
// forms stop GCC from vectorising the loops that call them, and then mispredict on random signs
// (a fused batchnorm + ReLU6 backward ran 10x slower that way).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "core/hd.h"

namespace pmpl::math {

// exp for the CPU's float loops, branch-free so that GCC vectorises the loops that call it
// (glibc's expf is a scalar call, in which EfficientNet's SiLU batchnorms spent a third of a
// training step): n = round(x / ln 2) in float, exp(x - n ln 2) by its Taylor series to r^8 in
// double (|r| <= 0.35: error below 1e-11), rounded to float and scaled by 2^n exactly. Rounded
// as well as glibc's expf (within 0.51 ulp over [-87, 88], Math.VectorExpfRoundsAsGlibcDoes;
// Cephes' float polynomial was off by one ulp in 10% of cases, and EfficientNet-B0's worst f32
// gradient error grew from 1.4e-4 to 2.5e-4 with it). The argument is clamped to [-87, 88],
// where sigmoid and SiLU have long saturated; NaN stays NaN.
// Rounding n by adding and subtracting 1.5 * 2^23 vectorises where floor does not, and the
// clamps need -fno-trapping-math (CMakeLists.txt) to become branch-free selects.
inline float vector_expf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const double r = static_cast<double>(x) - static_cast<double>(n) * 0.6931471805599453;
  double p = 1.0 / 40320;
  for (const double c : {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0}) p = p * r + c;
  return static_cast<float>(p) * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);  // times 2^n
}

// The C functions exist on both sides under these names; std:: overloads do not. The host's
// float exp is vector_expf.
PMPL_HD float exp_of(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  return vector_expf(x);
#endif
}
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
