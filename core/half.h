// bf16 and f16 storage types usable on the host (and on the device: same bits as CUDA's types).
// Only conversion is defined here; arithmetic happens in f32.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/hd.h"

namespace pmpl {

PMPL_HD uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

PMPL_HD float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  // Round to nearest even, as CUDA's __float2bfloat16 does; NaN stays a (quiet) NaN.
  PMPL_HD explicit bf16(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  PMPL_HD explicit operator float() const { return bits_float(static_cast<uint32_t>(bits) << 16); }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  // IEEE binary16, round to nearest even, with subnormals, infinities and NaN.
  PMPL_HD explicit f16(float f) {
    const uint32_t u = float_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) {
      bits = static_cast<uint16_t>(sign | 0x7e00u);
    } else if (abs >= 0x477ff000u) {  // rounds to or past 65520: infinity
      bits = static_cast<uint16_t>(sign | 0x7c00u);
    } else if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
      const uint32_t exponent = abs >> 23;
      if (exponent < 102) {
        bits = static_cast<uint16_t>(sign);
        return;
      }
      const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
      const uint32_t shift = 126 - exponent;  // 14..24
      uint32_t half = mantissa >> shift;
      const uint32_t rest = mantissa & ((1u << shift) - 1);
      const uint32_t halfway = 1u << (shift - 1);
      if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
      bits = static_cast<uint16_t>(sign | half);
    } else {
      uint32_t v = abs - 0x38000000u;  // rebias exponent 127 -> 15
      v += 0xfffu + ((v >> 13) & 1u);
      bits = static_cast<uint16_t>(sign | (v >> 13));
    }
  }
  PMPL_HD explicit operator float() const {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1fu;
    const uint32_t mantissa = bits & 0x3ffu;
    if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    // Subnormal: value is mantissa * 2^-24, exact in f32.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
};

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

// Value conversion between any two element types; the 16-bit floats go through f32. Floating
// to integer is defined everywhere (C++ leaves out-of-range values undefined, and x86 and GPUs
// resolve it differently): NaN gives 0, values beyond the integer's range its nearest end, the
// rest truncate toward zero.
template <class D, class S>
PMPL_HD D cast_value(S s) {
  if constexpr (is_half_v<S>) {
    return cast_value<D>(static_cast<float>(s));
  } else if constexpr (is_half_v<D>) {
    return D(static_cast<float>(s));
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    if (!(s == s)) return D(0);
    // The integer range's ends as S: exact for the low end (0 or -2^k); the high end 2^k - 1 may
    // round up to 2^k, hence >= rather than >.
    const S low = static_cast<S>(std::numeric_limits<D>::lowest());
    const S high = static_cast<S>(std::numeric_limits<D>::max());
    if (s <= low) return std::numeric_limits<D>::lowest();
    if (s >= high) return std::numeric_limits<D>::max();
    return static_cast<D>(s);
  } else {
    return static_cast<D>(s);
  }
}

}  // namespace pmpl
