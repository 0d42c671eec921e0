// Max and average pooling, k x k, NHWC, with PyTorch's semantics (core/kernels/pool.h: the
// geometry and per-element arithmetic, shared with the CUDA kernels): max never picks padding and
// keeps the first maximum of a window (row-major scan), a NaN winning; avg divides by the window
// clipped to the padded input (count_include_pad=True). Max records each output's winning tap
// (one byte) for its backward. The CPU loops run channels innermost; the GPU runs the per-element
// functions, one thread per element.
#include <algorithm>
#include <limits>

#include "core/kernels/pool.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/pool.h"
#endif

namespace pmpl::ops {
namespace {

using kernels::PoolGeometry;

// Runs f(scratch, n, nh, oh, ow, h0, h1, w0, w1, divisor) for every output pixel, rows of
// outputs in parallel; `scratch` is the thread's buffer of C values of type L.
template <class L, class F>
void for_each_window(const PoolGeometry& g, const F& f) {
#pragma omp parallel if (g.n * g.ho * g.wo * g.c > 16384)
  {
    std::vector<L> scratch(static_cast<size_t>(g.c));
#pragma omp for
    for (int64_t nh = 0; nh < g.n * g.ho; ++nh) {
      const int64_t n = nh / g.ho, oh = nh % g.ho;
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        int64_t h0, h1, w0, w1, divisor;
        g.window(oh, ow, h0, h1, w0, w1, divisor);
        f(scratch.data(), n, nh, oh, ow, h0, h1, w0, w1, divisor);
      }
    }
  }
}

// Also records, when `taps` is given, each output's winning tap (ki * k + kj: one byte, k <= 15)
// for the backward. The scan keeps taps in 32-bit lanes, the width of the float compares, and
// narrows them once per output pixel: mixing byte and float lanes in the scan is ~5x slower.
template <class T>
void max_forward(const T* x, T* y, uint8_t* taps, const PoolGeometry& g) {
  for_each_window<int32_t>(g, [&](int32_t* best_tap, int64_t n, int64_t nh, int64_t oh, int64_t ow, int64_t h0,
                                  int64_t h1, int64_t w0, int64_t w1, int64_t) {
    T* yr = y + (nh * g.wo + ow) * g.c;
    const int64_t top = oh * g.stride - g.padding, left = ow * g.stride - g.padding;
    std::fill(yr, yr + g.c, -std::numeric_limits<T>::infinity());
    std::fill(best_tap, best_tap + g.c, static_cast<int32_t>((h0 - top) * g.k + (w0 - left)));
    for (int64_t ih = h0; ih < h1; ++ih) {
      for (int64_t iw = w0; iw < w1; ++iw) {
        const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
        const auto tap = static_cast<int32_t>((ih - top) * g.k + (iw - left));
#pragma omp simd
        for (int64_t c = 0; c < g.c; ++c) {
          // Bitwise, not short-circuit: branch-free selects vectorise as blends (a branchy
          // form becomes masked stores, which are microcoded on AMD cores).
          const bool wins = (xr[c] > yr[c]) | ((xr[c] != xr[c]) & (yr[c] == yr[c]));
          yr[c] = wins ? xr[c] : yr[c];
          best_tap[c] = wins ? tap : best_tap[c];
        }
      }
    }
    if (taps != nullptr) {
      uint8_t* tr = taps + (nh * g.wo + ow) * g.c;
#pragma omp simd
      for (int64_t c = 0; c < g.c; ++c) tr[c] = static_cast<uint8_t>(best_tap[c]);
    }
  });
}

// Sums of row sums, as kernels::avg_pool_value.
template <class T>
void avg_forward(const T* x, T* y, const PoolGeometry& g) {
  for_each_window<T>(g, [&](T* row, int64_t n, int64_t nh, int64_t, int64_t ow, int64_t h0, int64_t h1, int64_t w0,
                            int64_t w1, int64_t divisor) {
    T* yr = y + (nh * g.wo + ow) * g.c;
    std::fill(yr, yr + g.c, T(0));
    for (int64_t ih = h0; ih < h1; ++ih) {
      std::fill(row, row + g.c, T(0));
      for (int64_t iw = w0; iw < w1; ++iw) {
        const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
        for (int64_t c = 0; c < g.c; ++c) row[c] += xr[c];
      }
#pragma omp simd
      for (int64_t c = 0; c < g.c; ++c) yr[c] += row[c];
    }
    const T inv = T(1) / static_cast<T>(divisor);
#pragma omp simd
    for (int64_t c = 0; c < g.c; ++c) yr[c] *= inv;
  });
}

// Scatters each output's gradient to its recorded winner. Work is split by (image, channel
// block), so no two threads ever add to the same element.
template <class T>
void max_backward(const uint8_t* taps, const T* gy, T* gx, const PoolGeometry& g) {
  constexpr int64_t kBlock = 64;
  std::fill(gx, gx + g.n * g.h * g.w * g.c, T(0));
  std::vector<int64_t> tap_offset(static_cast<size_t>(g.k * g.k));
  for (int64_t t = 0; t < g.k * g.k; ++t) tap_offset[t] = ((t / g.k) * g.w + t % g.k) * g.c;
  const int64_t blocks = (g.c + kBlock - 1) / kBlock;
#pragma omp parallel for if (g.n * g.ho * g.wo * g.c > 16384)
  for (int64_t nb = 0; nb < g.n * blocks; ++nb) {
    const int64_t n = nb / blocks, c0 = (nb % blocks) * kBlock, c1 = std::min(c0 + kBlock, g.c);
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const int64_t o = ((n * g.ho + oh) * g.wo + ow) * g.c;
        // Flat index of the window's (unclipped) top-left corner; taps always land inside.
        const int64_t corner =
            ((n * g.h + oh * g.stride - g.padding) * g.w + ow * g.stride - g.padding) * g.c;
        for (int64_t c = c0; c < c1; ++c) gx[corner + tap_offset[taps[o + c]] + c] += gy[o + c];
      }
    }
  }
}

// Gather: each input pixel sums gy / divisor over the windows that cover it, so threads own
// disjoint rows and every loop runs over all channels.
template <class T>
void avg_backward(const T* gy, T* gx, const PoolGeometry& g) {
#pragma omp parallel for if (g.n * g.h * g.w * g.c > 16384)
  for (int64_t nh = 0; nh < g.n * g.h; ++nh) {
    const int64_t n = nh / g.h, ih = nh % g.h;
    int64_t oh0, oh1;
    g.covering(ih, g.ho, oh0, oh1);
    for (int64_t iw = 0; iw < g.w; ++iw) {
      T* dr = gx + (nh * g.w + iw) * g.c;
      std::fill(dr, dr + g.c, T(0));
      int64_t ow0, ow1;
      g.covering(iw, g.wo, ow0, ow1);
      for (int64_t oh = oh0; oh <= oh1; ++oh) {
        for (int64_t ow = ow0; ow <= ow1; ++ow) {
          int64_t h0, h1, w0, w1, divisor;
          g.window(oh, ow, h0, h1, w0, w1, divisor);
          const T inv = T(1) / static_cast<T>(divisor);
          const T* gr = gy + ((n * g.ho + oh) * g.wo + ow) * g.c;
#pragma omp simd
          for (int64_t c = 0; c < g.c; ++c) dr[c] += gr[c] * inv;
        }
      }
    }
  }
}

#if PMPL_CUDA
Tensor pool_cuda(const char* name, const Tensor& x, const PoolGeometry& g, bool is_max) {
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.c}, x.dtype(), x.device());
  const bool grad = needs_grad({&x});
  Tensor taps = is_max && grad ? Tensor::empty(y.shape(), DType::kU8, x.device()) : Tensor();
  cuda::pool_forward(x.dtype(), is_max, x.raw_data(), y.raw_data(), grad && is_max ? taps.data<uint8_t>() : nullptr,
                     g);
  if (grad) {
    record(name, {&x}, {y}, [taps, g, is_max, shape = x.shape()](const Tensors& gr) -> Tensors {
      Tensor gx = Tensor::empty(shape, gr[0].dtype(), gr[0].device());
      cuda::pool_backward(gx.dtype(), is_max, gr[0].raw_data(), is_max ? taps.data<uint8_t>() : nullptr,
                          gx.raw_data(), g);
      return {gx};
    });
  }
  return y;
}
#endif

Tensor pool(const char* name, const Tensor& x, int kernel, int stride, int padding, bool is_max) {
  const bool gpu = detail::check_float(name, {&x});
  detail::check_rank(name, "input", x, 4, "N, H, W, C");
  PMPL_CHECK(padding <= kernel / 2, "{}: padding {} is more than half the kernel {}", name,
             padding, kernel);
  PMPL_CHECK(kernel <= 15, "{}: kernel {} is larger than the supported 15", name, kernel);
  PoolGeometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), 0, 0, kernel, stride, padding};
  g.ho = detail::window_output_size(name, g.h, kernel, stride, padding);
  g.wo = detail::window_output_size(name, g.w, kernel, stride, padding);
  if (gpu) {
#if PMPL_CUDA
    return pool_cuda(name, x, g, is_max);
#endif
  }
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.c}, x.dtype(), x.device());
  const bool grad = needs_grad({&x});
  // Max keeps one byte per output for its backward (the winning tap), a quarter of y's size.
  Tensor taps = is_max && grad ? Tensor::empty(y.shape(), DType::kU8) : Tensor();
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    if (is_max) max_forward(x.data<T>(), y.data<T>(), grad ? taps.data<uint8_t>() : nullptr, g);
    else avg_forward(x.data<T>(), y.data<T>(), g);
  });
  if (grad) {
    record(name, {&x}, {y},
           [taps, g, is_max, name, shape = x.shape(), dtype = x.dtype()](const Tensors& gr) -> Tensors {
             Tensor gx = Tensor::empty(shape, dtype);
             dispatch_float(dtype, name, [&](auto tag) {
               using T = decltype(tag);
               if (is_max) max_backward(taps.data<uint8_t>(), gr[0].data<T>(), gx.data<T>(), g);
               else avg_backward(gr[0].data<T>(), gx.data<T>(), g);
             });
             return {gx};
           });
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding) {
  return pool("max_pool2d", x, kernel, stride, padding, true);
}

Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int padding) {
  return pool("avg_pool2d", x, kernel, stride, padding, false);
}

}  // namespace pmpl::ops
