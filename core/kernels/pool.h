// Max and average pooling's geometry and per-element arithmetic (k x k, any stride, padding up to
// k / 2, NHWC), written once for the CPU op (engine/ops/pooling.cpp) and the CUDA kernels
// (cuda_kernels/pool.cu), with PyTorch's semantics: max never picks padding and keeps the first
// maximum of a window (row-major scan), a NaN winning; avg divides by the window clipped to the
// padded input (count_include_pad=True). Max records each output's winning tap (ki * k + kj, one
// byte: k <= 15) for its backward.
#pragma once

#include <cstdint>
#include <limits>

#include "core/hd.h"
#include "core/kernels/storage.h"

namespace pmpl::kernels {

struct PoolGeometry {
  int64_t n, h, w, c, ho, wo;
  int k, stride, padding;
  // Window rows/cols of output (oh, ow) clipped to the input, and PyTorch's avg divisor.
  PMPL_HD void window(int64_t oh, int64_t ow, int64_t& h0, int64_t& h1, int64_t& w0, int64_t& w1,
                      int64_t& divisor) const {
    h0 = oh * stride - padding;
    w0 = ow * stride - padding;
    h1 = h0 + k < h + padding ? h0 + k : h + padding;
    w1 = w0 + k < w + padding ? w0 + k : w + padding;
    divisor = (h1 - h0) * (w1 - w0);
    h0 = h0 > 0 ? h0 : 0;
    w0 = w0 > 0 ? w0 : 0;
    h1 = h1 < h ? h1 : h;
    w1 = w1 < w ? w1 : w;
  }
  // The outputs [o0, o1] whose window [o * s - p, o * s - p + k) contains input index i (along
  // one axis with `outputs` positions); empty when o0 > o1.
  PMPL_HD void covering(int64_t i, int64_t outputs, int64_t& o0, int64_t& o1) const {
    const int64_t first = (i + padding - k + stride) / stride, last = (i + padding) / stride;
    o0 = first > 0 ? first : 0;
    o1 = last < outputs - 1 ? last : outputs - 1;
  }
};

// The max of output (n, oh, ow, ch) and its winning tap.
template <class S, class T = compute_t<S>>
PMPL_HD T max_pool_value(const S* x, const PoolGeometry& g, int64_t n, int64_t oh, int64_t ow, int64_t ch,
                         int& tap) {
  int64_t h0, h1, w0, w1, divisor;
  g.window(oh, ow, h0, h1, w0, w1, divisor);
  const int64_t top = oh * g.stride - g.padding, left = ow * g.stride - g.padding;
  T best = -std::numeric_limits<T>::infinity();
  tap = static_cast<int>((h0 - top) * g.k + (w0 - left));
  for (int64_t ih = h0; ih < h1; ++ih) {
    for (int64_t iw = w0; iw < w1; ++iw) {
      const T v = load_value(x, ((n * g.h + ih) * g.w + iw) * g.c + ch);
      const bool wins = (v > best) | ((v != v) & (best == best));
      best = wins ? v : best;
      tap = wins ? static_cast<int>((ih - top) * g.k + (iw - left)) : tap;
    }
  }
  return best;
}

// The average of output (n, oh, ow, ch): the sum of the window's row sums (each left to right,
// the rows top to bottom: the order of the fused Meta-Pooling mixture's separable pools,
// core/kernels/pool_mix.h), times 1 / divisor.
template <class S, class T = compute_t<S>>
PMPL_HD T avg_pool_value(const S* x, const PoolGeometry& g, int64_t n, int64_t oh, int64_t ow, int64_t ch) {
  int64_t h0, h1, w0, w1, divisor;
  g.window(oh, ow, h0, h1, w0, w1, divisor);
  T sum = T(0);
  for (int64_t ih = h0; ih < h1; ++ih) {
    T row = T(0);
    for (int64_t iw = w0; iw < w1; ++iw) row += load_value(x, ((n * g.h + ih) * g.w + iw) * g.c + ch);
    sum += row;
  }
  return sum * (T(1) / static_cast<T>(divisor));
}

// The gradient of input (n, ih, iw, ch): a gather over the outputs covering it, in increasing
// (oh, ow) order, of dy (max: where this input won) or dy / divisor (avg).
template <bool kMax, class S, class T = compute_t<S>>
PMPL_HD T pool_input_grad(const S* dy, const uint8_t* taps, const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw,
                          int64_t ch) {
  int64_t oh0, oh1, ow0, ow1;
  g.covering(ih, g.ho, oh0, oh1);
  g.covering(iw, g.wo, ow0, ow1);
  T acc = T(0);
  for (int64_t oh = oh0; oh <= oh1; ++oh) {
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const int64_t o = ((n * g.ho + oh) * g.wo + ow) * g.c + ch;
      if (kMax) {
        const int64_t tap = (ih - (oh * g.stride - g.padding)) * g.k + (iw - (ow * g.stride - g.padding));
        if (taps[o] == tap) acc += load_value(dy, o);
      } else {
        int64_t h0, h1, w0, w1, divisor;
        g.window(oh, ow, h0, h1, w0, w1, divisor);
        acc += load_value(dy, o) * (T(1) / static_cast<T>(divisor));
      }
    }
  }
  return acc;
}

}  // namespace pmpl::kernels
