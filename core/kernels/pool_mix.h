// The fused Meta-Pooling mixture's per-element arithmetic, written once for the CPU op
// (engine/ops/pool_mix.cpp) and the CUDA kernels (cuda_kernels/pool_mix.cu):
//
//   y = w[0] x + w[1] strip + w[2] max3(x) + w[3] max5(x) + w[4] max7(x)
//         + w[5] avg3(x) + w[6] avg5(x) + w[7] avg7(x),   strip = (x * a_w) * a_h
//
// (weights in PoolOp order; pools stride 1, padding k / 2; a_h per (image, row, channel) and a_w
// per (image, column, channel) are the strip branch's attention, so its product is formed here
// instead of being written and read as two more full tensors). The pools are separable: a row stage
// takes, for one input row, the 3-, 5- and 7-wide windows around a column (sums left to right,
// first maximum and its column); a column stage combines seven such rows top to bottom. That is
// 7 loads per row result and 7 row results per output instead of 49 loads, and it is exactly the
// separate ops' arithmetic: averages are sums of row sums (core/kernels/pool.h sums the same
// way), and the first maximum of the first row holding the window's maximum is the row-major
// first maximum (a NaN wins: the first NaN in row-major order). So every branch equals the
// separate op bit for bit, and the mixture (accumulated in the order above) equals weighted_sum's.
//
// Backward recomputes instead of storing: pass 1 recomputes each output's branches (for dw_k =
// sum dy * branch_k) and records its winners, one byte of row offsets (as an output) and one of
// column offsets (as the centre of its own row's pools). Pass 2 runs the stages backwards: the
// gradient reaching the pools of row r at column w gathers dy from the outputs of column w within
// 3 rows (pool_mix_row_grad), and an input gathers from the 7 row results around it
// (pool_mix_input_grad).
#pragma once

#include <cstdint>
#include <limits>

#include "core/hd.h"
#include "core/kernels/storage.h"

namespace pmpl::kernels {

inline constexpr int kPoolMixWeights = 8;  // PoolOp order: skip, strip, max3, max5, max7, avg3, avg5, avg7
inline constexpr int kPoolMixRadius = 3;   // of the largest window, 7x7
inline constexpr int kPoolMixWindows = 3;  // 3x3, 5x5, 7x7: window k has radius k + 1

struct PoolMixShape {
  int64_t n, h, w, c;
};

// The offsets [lo, hi] within [-3, 3] of the positions p + d that lie in [0, len).
PMPL_HD void pool_mix_span(int64_t p, int64_t len, int& lo, int& hi) {
  lo = p < kPoolMixRadius ? static_cast<int>(-p) : -kPoolMixRadius;
  hi = len - 1 - p < kPoolMixRadius ? static_cast<int>(len - 1 - p) : kPoolMixRadius;
}

// The max pools' rule, bitwise so it vectorises: a NaN wins over a number, otherwise only a
// larger value, so the first maximum in scan order is kept.
template <class T>
PMPL_HD bool pool_mix_wins(T v, T best) {
  return (v > best) | ((v != v) & (best == best));
}

// Winner offsets of the three windows in one byte: offset + radius in 2, 3 and 3 bits. (Plain
// integer arithmetic, so the CPU's channel loops vectorise it.)
PMPL_HD int pool_mix_pack(int offset3, int offset5, int offset7) {
  return (offset3 + 1) | ((offset5 + 2) << 2) | ((offset7 + 3) << 5);
}
PMPL_HD uint8_t pool_mix_pack(const int* offsets) {
  return static_cast<uint8_t>(pool_mix_pack(offsets[0], offsets[1], offsets[2]));
}
PMPL_HD int pool_mix_unpack(int packed, int k) {
  const int shift = k == 0 ? 0 : k == 1 ? 2 : 5;
  return ((packed >> shift) & (k == 0 ? 3 : 7)) - (k + 1);
}

// The row stage: the windows 3, 5 and 7 wide around a column of one input row.
template <class T>
struct PoolMixRow {
  T sum[kPoolMixWindows];  // in-bounds values, left to right from 0
  T max[kPoolMixWindows];  // first maximum
  int at[kPoolMixWindows];  // its column offset
};

// x(d) is the value at column offset d; [lo, hi] the in-bounds offsets.
template <class T, class Load>
PMPL_HD PoolMixRow<T> pool_mix_row(const Load& x, int lo, int hi) {
  PoolMixRow<T> r;
  for (int k = 0; k < kPoolMixWindows; ++k) {
    r.sum[k] = T(0);
    r.max[k] = -std::numeric_limits<T>::infinity();
    r.at[k] = lo > -(k + 1) ? lo : -(k + 1);  // a window of -inf keeps its first tap, as the separate op
  }
  for (int d = -kPoolMixRadius; d <= kPoolMixRadius; ++d) {
    if (d < lo || d > hi) continue;
    const T v = x(d);
    const int far = d < 0 ? -d : d;
    for (int k = 0; k < kPoolMixWindows; ++k) {
      if (far > k + 1) continue;
      const bool wins = pool_mix_wins(v, r.max[k]);
      r.max[k] = wins ? v : r.max[k];
      r.at[k] = wins ? d : r.at[k];
      r.sum[k] += v;
    }
  }
  return r;
}

// The column stage: the six pools of one output and the row offsets of its max windows' winners.
template <class T>
struct PoolMixBranches {
  T max[kPoolMixWindows], avg[kPoolMixWindows];
  int row[kPoolMixWindows];
};

// rows[d + 3] is the row stage of input row oh + d at the output's column; [lo, hi] the in-bounds
// row offsets.
template <class T>
PMPL_HD PoolMixBranches<T> pool_mix_column(const PoolMixRow<T>* rows, int lo, int hi) {
  PoolMixBranches<T> b;
  T sum[kPoolMixWindows];
  for (int k = 0; k < kPoolMixWindows; ++k) {
    sum[k] = T(0);
    b.max[k] = -std::numeric_limits<T>::infinity();
    b.row[k] = lo > -(k + 1) ? lo : -(k + 1);
  }
  for (int d = -kPoolMixRadius; d <= kPoolMixRadius; ++d) {
    if (d < lo || d > hi) continue;
    const PoolMixRow<T>& r = rows[d + kPoolMixRadius];
    const int far = d < 0 ? -d : d;
    for (int k = 0; k < kPoolMixWindows; ++k) {
      if (far > k + 1) continue;
      const bool wins = pool_mix_wins(r.max[k], b.max[k]);
      b.max[k] = wins ? r.max[k] : b.max[k];
      b.row[k] = wins ? d : b.row[k];
      sum[k] += r.sum[k];
    }
  }
  for (int k = 0; k < kPoolMixWindows; ++k) b.avg[k] = sum[k] * (T(1) / T((2 * k + 3) * (2 * k + 3)));
  return b;
}

// The strip branch at one element, in ops::mul(ops::mul(x, a_w), a_h)'s order.
template <class T>
PMPL_HD T pool_mix_strip(T x, T a_w, T a_h) {
  return (x * a_w) * a_h;
}

// Backward of the strip branch at one element, given d = dy and the strip weight w1 (the chain
// rule of the two products, in their order): what reaches a_h (summed over the row), a_w (summed
// over the column) and x.
template <class T>
struct PoolMixStripGrad {
  T a_h, a_w, x;
};
template <class T>
PMPL_HD PoolMixStripGrad<T> pool_mix_strip_grad(T d, T w1, T x, T a_w, T a_h) {
  const T ds = w1 * d;       // d strip
  const T dt = ds * a_h;     // d (x * a_w)
  return {ds * (x * a_w), dt * x, dt * a_w};
}

// Branch k of the mixture (PoolOp order) at one element.
template <class T>
PMPL_HD T pool_mix_branch(T skip, T strip, const PoolMixBranches<T>& b, int k) {
  return k == 0 ? skip : k == 1 ? strip : k < 5 ? b.max[k - 2] : b.avg[k - 5];
}

// The mixture at one element, accumulated in weight order (as ops::weighted_sum does).
template <class T>
PMPL_HD T pool_mix_value(T skip, T strip, const PoolMixBranches<T>& b, const T* w) {
  T y = w[0] * skip;
  for (int k = 1; k < kPoolMixWeights; ++k) y += w[k] * pool_mix_branch(skip, strip, b, k);
  return y;
}

// Backward of the column stage: what reaches the pools of input row r at column w.
template <class T>
struct PoolMixRowGrad {
  T avg[kPoolMixWindows];  // w_avg_k / k^2 times the dy of the outputs whose window k holds row r
  T max[kPoolMixWindows];  // w_max_k times the dy of the outputs whose window k's winner is in row r
};

// dy(e) and rows(e) are the gradient and the row-offset byte of output (r + e, w); [lo, hi] the
// in-bounds e. Sums run top to bottom from 0.
template <class T, class LoadGrad, class LoadWinners>
PMPL_HD PoolMixRowGrad<T> pool_mix_row_grad(const LoadGrad& dy, const LoadWinners& rows, int lo, int hi, const T* w) {
  T avg[kPoolMixWindows], max[kPoolMixWindows];
  for (int k = 0; k < kPoolMixWindows; ++k) avg[k] = max[k] = T(0);
  for (int e = -kPoolMixRadius; e <= kPoolMixRadius; ++e) {
    if (e < lo || e > hi) continue;
    const T d = dy(e);
    const uint8_t won = rows(e);
    const int far = e < 0 ? -e : e;
    for (int k = 0; k < kPoolMixWindows; ++k) {
      if (far > k + 1) continue;
      avg[k] += d;
      // That output's winner sits at its row offset -e, i.e. in row r. (+0 keeps the sum: it starts
      // at +0, so it is never -0.)
      max[k] += pool_mix_unpack(won, k) == -e ? d : T(0);
    }
  }
  PoolMixRowGrad<T> g;
  for (int k = 0; k < kPoolMixWindows; ++k) {
    g.avg[k] = w[5 + k] * (T(1) / T((2 * k + 3) * (2 * k + 3))) * avg[k];
    g.max[k] = w[2 + k] * max[k];
  }
  return g;
}

// Backward of the row stage: the pools' share of the gradient of input (r, iw). grad(e) is the
// PoolMixRowGrad of row r at column iw + e, cols(e) the column-offset byte of element (r, iw + e);
// [lo, hi] the in-bounds e. pool_mix_dx adds the skip and strip branches.
template <class T, class LoadRowGrad, class LoadWinners>
PMPL_HD T pool_mix_input_grad(const LoadRowGrad& grad, const LoadWinners& cols, int lo, int hi) {
  T g = T(0);
  for (int e = -kPoolMixRadius; e <= kPoolMixRadius; ++e) {
    if (e < lo || e > hi) continue;
    const PoolMixRowGrad<T>& from = grad(e);
    const uint8_t won = cols(e);
    const int far = e < 0 ? -e : e;
    for (int k = 0; k < kPoolMixWindows; ++k) g += far <= k + 1 ? from.avg[k] : T(0);
    for (int k = 0; k < kPoolMixWindows; ++k) g += pool_mix_unpack(won, k) == -e ? from.max[k] : T(0);
  }
  return g;
}

// The whole input gradient: the pools' share g, then w[0] dy (skip), then the strip branch's.
template <class T>
PMPL_HD T pool_mix_dx(T g, T d, T strip_dx, const T* w) {
  return (g + w[0] * d) + strip_dx;
}

}  // namespace pmpl::kernels
