// The Meta-Pooling mixture's CPU stages, shared by the op (pool_mix.cpp) and its passes:
// pool_mix_forward.cpp (the forward), pool_mix_backward.cpp (the two backward passes: winners and
// dw, then dx), pool_mix_strip_grad.cpp (the strip attention's gradients). Each pass is
// instantiated for float and double in its file. The per-element arithmetic is
// core/kernels/pool_mix.h's, the same the CUDA kernels run.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/kernels/pool_mix.h"

namespace pmpl::ops::pool_mix_cpu {

using kernels::kPoolMixRadius;
using kernels::kPoolMixWeights;
using kernels::kPoolMixWindows;
using kernels::PoolMixShape;

constexpr int kRing = 2 * kPoolMixRadius + 1;
// Output rows per work item: each item recomputes the 6 halo rows of its row stage, and its
// weight-gradient partial is summed in item order (the same for any thread count).
constexpr int64_t kChunkRows = 8;

// Resizes every array of every argument to `size` elements.
template <class... Arrays>
void resize_each(int64_t size, Arrays&... arrays) {
  for (int k = 0; k < kPoolMixWindows; ++k) (arrays[k].resize(static_cast<size_t>(size)), ...);
}

template <class T>
T inverse_area(int k) {
  return T(1) / T((2 * k + 3) * (2 * k + 3));
}

// kernels::pool_mix_row for every (column, channel) of one input row, struct-of-arrays. Offsets
// live in 32-bit lanes, the width of the float compares (pooling.cpp: byte lanes are ~5x slower).
template <class T>
struct RowPools {
  std::array<std::vector<T>, kPoolMixWindows> sum, max;
  std::array<std::vector<int32_t>, kPoolMixWindows> at;

  explicit RowPools(int64_t size) { resize_each(size, sum, max, at); }

  void compute(const T* x, const PoolMixShape& s, int64_t n, int64_t ih) {
    const int64_t c = s.c;
    for (int64_t w = 0; w < s.w; ++w) {
      int lo, hi;
      kernels::pool_mix_span(w, s.w, lo, hi);
      for (int k = 0; k < kPoolMixWindows; ++k) {
        std::fill_n(sum[k].data() + w * c, c, T(0));
        std::fill_n(max[k].data() + w * c, c, -std::numeric_limits<T>::infinity());
        std::fill_n(at[k].data() + w * c, c, std::max(lo, -(k + 1)));
      }
      for (int d = lo; d <= hi; ++d) {
        const T* xr = x + ((n * s.h + ih) * s.w + w + d) * c;
        const int far = std::abs(d);
        for (int k = 0; k < kPoolMixWindows; ++k) {
          if (far > k + 1) continue;
          T* ps = sum[k].data() + w * c;
          T* pm = max[k].data() + w * c;
          int32_t* pa = at[k].data() + w * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            const T v = xr[j];
            const bool wins = kernels::pool_mix_wins(v, pm[j]);
            pm[j] = wins ? v : pm[j];
            pa[j] = wins ? d : pa[j];
            ps[j] += v;
          }
        }
      }
    }
  }
};

// kernels::pool_mix_column for the channels of one output pixel.
template <class T>
struct PixelBranches {
  std::array<std::vector<T>, kPoolMixWindows> max, avg;
  std::array<std::vector<int32_t>, kPoolMixWindows> row;

  explicit PixelBranches(int64_t c) { resize_each(c, max, avg, row); }

  // rows[d + 3]: the row stage of input row oh + d (valid for d in [lo, hi]).
  void compute(const RowPools<T>* const* rows, int lo, int hi, int64_t ow, int64_t c) {
    for (int k = 0; k < kPoolMixWindows; ++k) {
      std::fill(avg[k].begin(), avg[k].end(), T(0));
      std::fill(max[k].begin(), max[k].end(), -std::numeric_limits<T>::infinity());
      std::fill(row[k].begin(), row[k].end(), std::max(lo, -(k + 1)));
    }
    for (int d = lo; d <= hi; ++d) {
      const RowPools<T>& r = *rows[d + kPoolMixRadius];
      const int far = std::abs(d);
      for (int k = 0; k < kPoolMixWindows; ++k) {
        if (far > k + 1) continue;
        const T* rs = r.sum[k].data() + ow * c;
        const T* rm = r.max[k].data() + ow * c;
        T *ps = avg[k].data(), *pm = max[k].data();
        int32_t* pr = row[k].data();
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) {
          const bool wins = kernels::pool_mix_wins(rm[j], pm[j]);
          pm[j] = wins ? rm[j] : pm[j];
          pr[j] = wins ? d : pr[j];
          ps[j] += rs[j];
        }
      }
    }
    for (int k = 0; k < kPoolMixWindows; ++k) {
      const T inv = inverse_area<T>(k);
      T* ps = avg[k].data();
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) ps[j] *= inv;
    }
  }
};

// Runs visit(item, n, oh, ow, branches, centre) for every output pixel, items of kChunkRows rows
// of one image in parallel; `centre` is the row stage of row oh itself.
template <class T, class Visit>
void scan_outputs(const T* x, const PoolMixShape& s, const Visit& visit) {
  const int64_t chunks = (s.h + kChunkRows - 1) / kChunkRows;
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    std::vector<RowPools<T>> ring(kRing, RowPools<T>(s.w * s.c));
    PixelBranches<T> branches(s.c);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.n * chunks; ++item) {
      const int64_t n = item / chunks, oh0 = (item % chunks) * kChunkRows, oh1 = std::min(s.h, oh0 + kChunkRows);
      int64_t next = std::max<int64_t>(oh0 - kPoolMixRadius, 0);  // the next input row to compute
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        for (; next <= std::min(oh + kPoolMixRadius, s.h - 1); ++next) ring[next % kRing].compute(x, s, n, next);
        int lo, hi;
        kernels::pool_mix_span(oh, s.h, lo, hi);
        const RowPools<T>* rows[kRing] = {};
        for (int d = lo; d <= hi; ++d) rows[d + kPoolMixRadius] = &ring[(oh + d) % kRing];
        for (int64_t ow = 0; ow < s.w; ++ow) {
          branches.compute(rows, lo, hi, ow, s.c);
          visit(item, n, oh, ow, branches, *rows[kPoolMixRadius]);
        }
      }
    }
  }
}

inline int64_t scan_items(const PoolMixShape& s) { return s.n * ((s.h + kChunkRows - 1) / kChunkRows); }

// The strip branch's attention: a_h [N, H, C] and a_w [N, W, C] (as [N, H, 1, C] and [N, 1, W, C]).
template <class T>
struct StripAttention {
  const T *a_h, *a_w;
  const T* row(const PoolMixShape& s, int64_t n, int64_t h) const { return a_h + (n * s.h + h) * s.c; }
  const T* column(const PoolMixShape& s, int64_t n, int64_t w) const { return a_w + (n * s.w + w) * s.c; }
};

// The mixture's value at every output: y = sum_k w[k] * branch_k(x).
template <class T>
void forward(const T* x, const StripAttention<T>& att, const T* w, T* y, const PoolMixShape& s);

// Pass 1 of backward: each element's winners (kernels::pool_mix_pack: low byte the row offsets of
// output i's max windows, high byte the column offsets of its row's pools) and dw = sum dy *
// branch, per work item, the items added in order.
template <class T>
void backward_pass1(const T* x, const StripAttention<T>& att, const T* gy, uint16_t* winners, double* dw,
                    const PoolMixShape& s);

// Pass 2: per input row r, kernels::pool_mix_row_grad at every (column, channel), then
// kernels::pool_mix_input_grad plus w[0] dy (channels innermost, in the functions' order).
template <class T>
void backward_pass2(const StripAttention<T>& att, const T* gy, const uint16_t* winners, const T* w, T* gx,
                    const PoolMixShape& s);

// The strip attention's gradients (kernels::pool_mix_strip_grad): d a_h[n, h, c] sums over the
// row's columns, d a_w[n, w, c] over the column's rows, in double, images in parallel and each
// image's elements in order (the same for any thread count).
template <class T>
void strip_attention_grads(const T* x, const StripAttention<T>& att, const T* gy, T w1, T* ga_h, T* ga_w,
                           const PoolMixShape& s);

}  // namespace pmpl::ops::pool_mix_cpu
