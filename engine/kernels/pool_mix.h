// The fused Meta-Pooling mixture's per-element arithmetic, written once for the CPU op
// (engine/ops/pool_mix.cpp) and the CUDA kernels (cuda_kernels/pool_mix.cu):
//
//   y = w[0] x + w[1] strip + w[2] max3(x) + w[3] max5(x) + w[4] max7(x)
//         + w[5] avg3(x) + w[6] avg5(x) + w[7] avg7(x)
//
// (weights in PoolOp order; pools stride 1, padding k / 2). One scan of the 7x7 window around
// an output gives all six pools: the 3x3 and 5x5 windows are its centre, scanned in the same
// row-major order, so every branch value (first maximum wins, a NaN wins; averages summed in
// scan order, then times 1 / k^2, padding counted as PyTorch's count_include_pad=True) and the
// mixture (accumulated in the order above) equal the separate ops bit for bit.
//
// Backward recomputes instead of storing: pass 1 recomputes each output's branches (for the
// weights' gradient, dw_k = sum dy * branch_k) and the winning taps of its three max windows;
// pass 2 gathers each input's gradient from the outputs whose windows cover it.
#pragma once

#include <cstdint>
#include <limits>

#include "engine/hd.h"
#include "engine/kernels/storage.h"

namespace pmpl::kernels {

inline constexpr int kPoolMixWeights = 8;  // PoolOp order: skip, strip, max3, max5, max7, avg3, avg5, avg7
inline constexpr int kPoolMixRadius = 3;   // of the largest window, 7x7

struct PoolMixShape {
  int64_t n, h, w, c;
};

// A tap of the 7x7 frame centred on an output: (dy + 3) * 7 + (dx + 3), dy, dx in [-3, 3].
PMPL_HD int pool_mix_tap(int dy, int dx) { return (dy + kPoolMixRadius) * 7 + (dx + kPoolMixRadius); }

template <class T>
struct PoolMixBranches {
  T max3, max5, max7, avg3, avg5, avg7;
  int tap3, tap5, tap7;  // winning taps of the max windows (pool_mix_tap)
};

// The six pooling branches at output (n, oh, ow, channel ch) of x [N, H, W, C] (stored as S,
// computed in T = compute_t<S>).
template <class S, class T = compute_t<S>>
PMPL_HD PoolMixBranches<T> pool_mix_branches(const S* x, const PoolMixShape& s, int64_t n, int64_t oh, int64_t ow,
                                             int64_t ch) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  PoolMixBranches<T> b;
  b.max3 = b.max5 = b.max7 = neg_inf;
  T sum3 = T(0), sum5 = T(0), sum7 = T(0);
  // A window's winner starts at its first in-bounds tap (as the separate op's scan does).
  auto first_tap = [&](int r) {
    const int dy = static_cast<int>((oh - r < 0 ? 0 : oh - r) - oh);
    const int dx = static_cast<int>((ow - r < 0 ? 0 : ow - r) - ow);
    return pool_mix_tap(dy, dx);
  };
  b.tap3 = first_tap(1);
  b.tap5 = first_tap(2);
  b.tap7 = first_tap(3);
  for (int dy = -kPoolMixRadius; dy <= kPoolMixRadius; ++dy) {
    const int64_t ih = oh + dy;
    if (ih < 0 || ih >= s.h) continue;
    const int ady = dy < 0 ? -dy : dy;
    for (int dx = -kPoolMixRadius; dx <= kPoolMixRadius; ++dx) {
      const int64_t iw = ow + dx;
      if (iw < 0 || iw >= s.w) continue;
      const int adx = dx < 0 ? -dx : dx;
      const int far = ady > adx ? ady : adx;
      const T v = load_value(x, ((n * s.h + ih) * s.w + iw) * s.c + ch);
      const int tap = pool_mix_tap(dy, dx);
      // Bitwise, as the separate op: a NaN wins over a number, the first maximum is kept.
      const bool nan = v != v;
      bool wins = (v > b.max7) | (nan & (b.max7 == b.max7));
      b.max7 = wins ? v : b.max7;
      b.tap7 = wins ? tap : b.tap7;
      sum7 += v;
      if (far <= 2) {
        wins = (v > b.max5) | (nan & (b.max5 == b.max5));
        b.max5 = wins ? v : b.max5;
        b.tap5 = wins ? tap : b.tap5;
        sum5 += v;
      }
      if (far <= 1) {
        wins = (v > b.max3) | (nan & (b.max3 == b.max3));
        b.max3 = wins ? v : b.max3;
        b.tap3 = wins ? tap : b.tap3;
        sum3 += v;
      }
    }
  }
  b.avg3 = sum3 * (T(1) / T(9));
  b.avg5 = sum5 * (T(1) / T(25));
  b.avg7 = sum7 * (T(1) / T(49));
  return b;
}

// The mixture at one element, accumulated in weight order (as ops::weighted_sum does).
template <class T>
PMPL_HD T pool_mix_value(T skip, T strip, const PoolMixBranches<T>& b, const T* w) {
  T y = w[0] * skip;
  y += w[1] * strip;
  y += w[2] * b.max3;
  y += w[3] * b.max5;
  y += w[4] * b.max7;
  y += w[5] * b.avg3;
  y += w[6] * b.avg5;
  y += w[7] * b.avg7;
  return y;
}

// The gradient reaching input (n, ih, iw, ch) from the pools (the skip and strip terms are the
// caller's): every output within the 7x7 neighbourhood gives w_avg_k dy / k^2 for each average
// window holding this input, and w_max_k dy for each max window this input won. `taps` holds
// pass 1's winners, three bytes per output element (max3, max5, max7).
template <class S, class T>
PMPL_HD T pool_mix_input_grad(const S* dy, const uint8_t* taps, const PoolMixShape& s, int64_t n, int64_t ih,
                              int64_t iw, int64_t ch, const T* w) {
  const T a3 = w[5] * (T(1) / T(9)), a5 = w[6] * (T(1) / T(25)), a7 = w[7] * (T(1) / T(49));
  T g = T(0);
  for (int oy = -kPoolMixRadius; oy <= kPoolMixRadius; ++oy) {
    const int64_t oh = ih + oy;
    if (oh < 0 || oh >= s.h) continue;
    const int aoy = oy < 0 ? -oy : oy;
    for (int ox = -kPoolMixRadius; ox <= kPoolMixRadius; ++ox) {
      const int64_t ow = iw + ox;
      if (ow < 0 || ow >= s.w) continue;
      const int aox = ox < 0 ? -ox : ox;
      const int far = aoy > aox ? aoy : aox;
      const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c + ch;
      const T d = load_value(dy, o);
      // This input seen from the output: offset (-oy, -ox).
      const int tap = pool_mix_tap(-oy, -ox);
      const uint8_t* t = taps + 3 * o;
      T from = a7;
      if (far <= 2) from += a5;
      if (far <= 1) from += a3;
      if (t[2] == tap) from += w[4];
      if (far <= 2 && t[1] == tap) from += w[3];
      if (far <= 1 && t[0] == tap) from += w[2];
      g += from * d;
    }
  }
  return g;
}

}  // namespace pmpl::kernels
