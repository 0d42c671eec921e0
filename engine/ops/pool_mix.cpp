// meta_pool_mix: the Meta-Pooling search mixture in one op (arithmetic: core/kernels/pool_mix.h,
// whose per-element functions the CUDA kernels run). On the CPU the same arithmetic runs with
// channels innermost, so every loop vectorises: the row stage of a whole input row at once (kept
// in a ring of seven rows per thread, so each is computed once per chunk of output rows), then
// the column stage per output pixel.
//
// Against the separate ops and weighted_sum: no six pooled temporaries (each as large as x), no
// separate weighted_sum pass, and 7 + 7 instead of 49 steps per pixel for the three windows.
#include <algorithm>
#include <array>
#include <limits>

#include "core/kernels/pool_mix.h"
#if PMPL_CUDA
#include "cuda_kernels/pool_mix.h"
#endif
#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

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

int64_t scan_items(const PoolMixShape& s) { return s.n * ((s.h + kChunkRows - 1) / kChunkRows); }

// The strip branch's attention: a_h [N, H, C] and a_w [N, W, C] (as [N, H, 1, C] and [N, 1, W, C]).
template <class T>
struct StripAttention {
  const T *a_h, *a_w;
  const T* row(const PoolMixShape& s, int64_t n, int64_t h) const { return a_h + (n * s.h + h) * s.c; }
  const T* column(const PoolMixShape& s, int64_t n, int64_t w) const { return a_w + (n * s.w + w) * s.c; }
};

template <class T>
void forward(const T* x, const StripAttention<T>& att, const T* w, T* y, const PoolMixShape& s) {
  scan_outputs(x, s, [&](int64_t, int64_t n, int64_t oh, int64_t ow, const PixelBranches<T>& b, const RowPools<T>&) {
    const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c;
    const T *xr = x + o, *ah = att.row(s, n, oh), *aw = att.column(s, n, ow);
    const T *m3 = b.max[0].data(), *m5 = b.max[1].data(), *m7 = b.max[2].data();
    const T *a3 = b.avg[0].data(), *a5 = b.avg[1].data(), *a7 = b.avg[2].data();
    T* yr = y + o;
#pragma omp simd
    for (int64_t j = 0; j < s.c; ++j) {
      // kernels::pool_mix_value, in its order (the strip branch as kernels::pool_mix_strip).
      T v = w[0] * xr[j];
      v += w[1] * ((xr[j] * aw[j]) * ah[j]);
      v += w[2] * m3[j];
      v += w[3] * m5[j];
      v += w[4] * m7[j];
      v += w[5] * a3[j];
      v += w[6] * a5[j];
      v += w[7] * a7[j];
      yr[j] = v;
    }
  });
}

// Pass 1 of backward: each element's winners (kernels::pool_mix_pack: low byte the row offsets of
// output i's max windows, high byte the column offsets of its row's pools) and dw = sum dy *
// branch, per work item, the items added in order.
template <class T>
void backward_pass1(const T* x, const StripAttention<T>& att, const T* gy, uint16_t* winners, double* dw,
                    const PoolMixShape& s) {
  const int64_t items = scan_items(s);
  const Tensor partial_buffer = detail::scratch<double>(items * kPoolMixWeights);
  double* partial = partial_buffer.data<double>();
  std::fill_n(partial, items * kPoolMixWeights, 0.0);
  scan_outputs(x, s, [&](int64_t item, int64_t n, int64_t oh, int64_t ow, const PixelBranches<T>& b,
                         const RowPools<T>& centre) {
    const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c;
    const T *xr = x + o, *g = gy + o, *ah = att.row(s, n, oh), *aw = att.column(s, n, ow);
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3, d4, d5, d6, d7)
    for (int64_t j = 0; j < s.c; ++j) {
      const double gj = static_cast<double>(g[j]);
      d0 += gj * static_cast<double>(xr[j]);
      d1 += gj * static_cast<double>((xr[j] * aw[j]) * ah[j]);
      d2 += gj * static_cast<double>(b.max[0][j]);
      d3 += gj * static_cast<double>(b.max[1][j]);
      d4 += gj * static_cast<double>(b.max[2][j]);
      d5 += gj * static_cast<double>(b.avg[0][j]);
      d6 += gj * static_cast<double>(b.avg[1][j]);
      d7 += gj * static_cast<double>(b.avg[2][j]);
    }
    const double d[kPoolMixWeights] = {d0, d1, d2, d3, d4, d5, d6, d7};
    for (int k = 0; k < kPoolMixWeights; ++k) partial[item * kPoolMixWeights + k] += d[k];
    uint16_t* wr = winners + o;
    const int32_t *r3 = b.row[0].data(), *r5 = b.row[1].data(), *r7 = b.row[2].data();
    const int32_t *c3 = centre.at[0].data() + ow * s.c, *c5 = centre.at[1].data() + ow * s.c;
    const int32_t* c7 = centre.at[2].data() + ow * s.c;
#pragma omp simd
    for (int64_t j = 0; j < s.c; ++j) {
      wr[j] = static_cast<uint16_t>(kernels::pool_mix_pack(r3[j], r5[j], r7[j]) |
                                    (kernels::pool_mix_pack(c3[j], c5[j], c7[j]) << 8));
    }
  });
  std::fill(dw, dw + kPoolMixWeights, 0.0);
  for (int64_t item = 0; item < items; ++item) {
    for (int k = 0; k < kPoolMixWeights; ++k) dw[k] += partial[item * kPoolMixWeights + k];
  }
}

// Pass 2: per input row r, kernels::pool_mix_row_grad at every (column, channel), then
// kernels::pool_mix_input_grad plus w[0] dy (channels innermost, in the functions' order).
template <class T>
void backward_pass2(const StripAttention<T>& att, const T* gy, const uint16_t* winners, const T* w, T* gx,
                    const PoolMixShape& s) {
  const int64_t c = s.c;
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    std::array<std::vector<T>, kPoolMixWindows> avg, max;
    resize_each(s.w * c, avg, max);
#pragma omp for schedule(static)
    for (int64_t nr = 0; nr < s.n * s.h; ++nr) {
      const int64_t n = nr / s.h, r = nr % s.h;
      int lo, hi;
      kernels::pool_mix_span(r, s.h, lo, hi);
      for (int64_t col = 0; col < s.w; ++col) {
        for (int k = 0; k < kPoolMixWindows; ++k) {
          std::fill_n(avg[k].data() + col * c, c, T(0));
          std::fill_n(max[k].data() + col * c, c, T(0));
        }
        for (int e = lo; e <= hi; ++e) {
          const int64_t o = ((n * s.h + r + e) * s.w + col) * c;
          const T* d = gy + o;
          const uint16_t* won = winners + o;
          const int far = std::abs(e);
          for (int k = 0; k < kPoolMixWindows; ++k) {
            if (far > k + 1) continue;
            T *pa = avg[k].data() + col * c, *pm = max[k].data() + col * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) {
              pa[j] += d[j];
              pm[j] += kernels::pool_mix_unpack(won[j] & 0xff, k) == -e ? d[j] : T(0);
            }
          }
        }
        for (int k = 0; k < kPoolMixWindows; ++k) {
          const T a = w[5 + k] * inverse_area<T>(k), m = w[2 + k];
          T *pa = avg[k].data() + col * c, *pm = max[k].data() + col * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            pa[j] = a * pa[j];
            pm[j] = m * pm[j];
          }
        }
      }
      for (int64_t iw = 0; iw < s.w; ++iw) {
        const int64_t i = (nr * s.w + iw) * c;
        T* g = gx + i;
        std::fill_n(g, c, T(0));
        int clo, chi;
        kernels::pool_mix_span(iw, s.w, clo, chi);
        for (int e = clo; e <= chi; ++e) {
          const int far = std::abs(e);
          for (int k = 0; k < kPoolMixWindows; ++k) {
            if (far > k + 1) continue;  // the function adds +0 there: the same bits (g is never -0)
            const T* pa = avg[k].data() + (iw + e) * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) g[j] += pa[j];
          }
          const uint16_t* won = winners + i + e * c;
          for (int k = 0; k < kPoolMixWindows; ++k) {
            const T* pm = max[k].data() + (iw + e) * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) g[j] += kernels::pool_mix_unpack(won[j] >> 8, k) == -e ? pm[j] : T(0);
          }
        }
        const T *d = gy + i, *ah = att.row(s, n, r), *aw = att.column(s, n, iw);
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) {
          // kernels::pool_mix_dx with kernels::pool_mix_strip_grad's x term.
          g[j] = (g[j] + w[0] * d[j]) + ((w[1] * d[j]) * ah[j]) * aw[j];
        }
      }
    }
  }
}

// The strip attention's gradients (kernels::pool_mix_strip_grad): d a_h[n, h, c] sums over the
// row's columns, d a_w[n, w, c] over the column's rows, in double, images in parallel and each
// image's elements in order (the same for any thread count).
template <class T>
void strip_attention_grads(const T* x, const StripAttention<T>& att, const T* gy, T w1, T* ga_h, T* ga_w,
                           const PoolMixShape& s) {
  const int64_t c = s.c;
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    std::vector<double> sum_h(static_cast<size_t>(c)), sum_w(static_cast<size_t>(s.w * c));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n) {
      std::fill(sum_w.begin(), sum_w.end(), 0.0);
      for (int64_t h = 0; h < s.h; ++h) {
        std::fill(sum_h.begin(), sum_h.end(), 0.0);
        const T* ah = att.row(s, n, h);
        for (int64_t w = 0; w < s.w; ++w) {
          const int64_t o = ((n * s.h + h) * s.w + w) * c;
          const T *xr = x + o, *d = gy + o, *aw = att.column(s, n, w);
          double* sw = sum_w.data() + w * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            const auto g = kernels::pool_mix_strip_grad(d[j], w1, xr[j], aw[j], ah[j]);
            sum_h[static_cast<size_t>(j)] += static_cast<double>(g.a_h);
            sw[j] += static_cast<double>(g.a_w);
          }
        }
        for (int64_t j = 0; j < c; ++j) ga_h[(n * s.h + h) * c + j] = static_cast<T>(sum_h[static_cast<size_t>(j)]);
      }
      for (int64_t j = 0; j < s.w * c; ++j) ga_w[n * s.w * c + j] = static_cast<T>(sum_w[static_cast<size_t>(j)]);
    }
  }
}

// The attention's shapes: a_h [N, H, 1, C] and a_w [N, 1, W, C] for x [N, H, W, C].
void check_shapes(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w) {
  detail::check_rank("meta_pool_mix", "x", x, 4, "N, H, W, C");
  const Shape want_h{x.dim(0), x.dim(1), 1, x.dim(3)}, want_w{x.dim(0), 1, x.dim(2), x.dim(3)};
  PMPL_CHECK(a_h.shape() == want_h && a_w.shape() == want_w,
             "meta_pool_mix: the strip attention must be a_h {} and a_w {} for x {}, got {} and {}", want_h.str(),
             want_w.str(), x.shape().str(), a_h.shape().str(), a_w.shape().str());
  PMPL_CHECK(w.rank() == 1 && w.dim(0) == kPoolMixWeights, "meta_pool_mix: weights must be [{}], got {}",
             kPoolMixWeights, w.shape().str());
}

#if PMPL_CUDA
// The same op on a GPU (cuda_kernels/pool_mix.cu): x, a_h and a_w of one dtype (f32, bf16, f16),
// the weights f32, every tensor on one device.
Tensor meta_pool_mix_cuda(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w,
                          const PoolMixShape& s) {
  detail::check_float("meta_pool_mix", {&x, &a_h, &a_w});
  PMPL_CHECK(w.device() == x.device() && w.dtype() == DType::kF32,
             "meta_pool_mix: on a GPU the weights must be f32 on {}, got {} on {}", x.device().str(),
             dtype_name(w.dtype()), w.device().str());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::pool_mix_forward(x.dtype(), x.raw_data(), a_h.raw_data(), a_w.raw_data(), w.data<float>(), y.raw_data(), s);
  if (needs_grad({&x, &a_h, &a_w, &w})) {
    record("meta_pool_mix", {&x, &a_h, &a_w, &w}, {y},
           [xs = x.detach(), hs = a_h.detach(), ws_ = a_w.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_att = a_h.requires_grad() || a_w.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             const Device device = xs.device();
             Tensor gx = grad_x ? Tensor::empty(xs.shape(), xs.dtype(), device) : Tensor();
             Tensor ga_h = grad_att ? Tensor::empty(hs.shape(), xs.dtype(), device) : Tensor();
             Tensor ga_w = grad_att ? Tensor::empty(ws_.shape(), xs.dtype(), device) : Tensor();
             Tensor gw = grad_w ? Tensor::empty(ws.shape(), DType::kF32, device) : Tensor();
             const Tensor winners = Tensor::empty(Shape{2 * xs.numel()}, DType::kU8, device);
             const Tensor partials = Tensor::empty(Shape{cuda::pool_mix_partials(s)}, DType::kF64, device);
             cuda::pool_mix_backward(xs.dtype(), xs.raw_data(), hs.raw_data(), ws_.raw_data(), ws.data<float>(),
                                     g[0].raw_data(), grad_x ? gx.raw_data() : nullptr,
                                     grad_att ? ga_h.raw_data() : nullptr, grad_att ? ga_w.raw_data() : nullptr,
                                     grad_w ? gw.data<float>() : nullptr, winners.data<uint8_t>(),
                                     partials.data<double>(), s);
             return {gx, ga_h, ga_w, gw};
           });
  }
  return y;
}
#endif

}  // namespace

Tensor meta_pool_mix(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w) {
  check_shapes(x, a_h, a_w, w);
  const PoolMixShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3)};
#if PMPL_CUDA
  if (x.is_cuda()) return meta_pool_mix_cuda(x, a_h, a_w, w, s);
#endif
  detail::check_cpu_float("meta_pool_mix", {&x, &a_h, &a_w, &w});
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "meta_pool_mix", [&](auto tag) {
    using T = decltype(tag);
    forward(x.data<T>(), StripAttention<T>{a_h.data<T>(), a_w.data<T>()}, w.data<T>(), y.data<T>(), s);
  });
  if (needs_grad({&x, &a_h, &a_w, &w})) {
    record("meta_pool_mix", {&x, &a_h, &a_w, &w}, {y},
           [xs = x.detach(), hs = a_h.detach(), ws_ = a_w.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_att = a_h.requires_grad() || a_w.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             Tensor gx, ga_h, ga_w, gw;
             dispatch_float(xs.dtype(), "meta_pool_mix", [&](auto tag) {
               using T = decltype(tag);
               const StripAttention<T> att{hs.data<T>(), ws_.data<T>()};
               // Pass 1 feeds dw and dx (its winners: two bytes per element, uint16 lanes as the
               // CUDA kernels store them); the attention's gradients need neither.
               const Tensor winner_bytes = detail::scratch<uint8_t>(grad_x || grad_w ? 2 * xs.numel() : 0);
               auto* winners = reinterpret_cast<uint16_t*>(winner_bytes.data<uint8_t>());
               double dw[kPoolMixWeights];
               if (grad_x || grad_w) backward_pass1(xs.data<T>(), att, g[0].data<T>(), winners, dw, s);
               if (grad_w) {
                 gw = empty_like(ws);
                 for (int k = 0; k < kPoolMixWeights; ++k) gw.data<T>()[k] = static_cast<T>(dw[k]);
               }
               if (grad_x) {
                 gx = empty_like(xs);
                 backward_pass2(att, g[0].data<T>(), winners, ws.data<T>(), gx.data<T>(), s);
               }
               if (grad_att) {
                 ga_h = empty_like(hs);
                 ga_w = empty_like(ws_);
                 strip_attention_grads(xs.data<T>(), att, g[0].data<T>(), ws.data<T>()[1], ga_h.data<T>(),
                                       ga_w.data<T>(), s);
               }
             });
             return {gx, ga_h, ga_w, gw};
           });
  }
  return y;
}

}  // namespace pmpl::ops
