// Max and average pooling, k x k, NHWC, with PyTorch's semantics: max never picks padding and
// keeps the first maximum of a window (row-major scan); avg divides by the window clipped to the
// padded input (count_include_pad=True); a NaN in a window wins, as in PyTorch. Max backward recomputes each window's argmax instead
// of storing it. Backward scatters per (image, channel block), so no two threads share an element.
#include <algorithm>
#include <limits>

#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

constexpr int64_t kChannelBlock = 32;

struct PoolGeometry {
  int64_t n, h, w, c, ho, wo;
  int k, stride, padding;
  // Window rows/cols of output (oh, ow) clipped to the input, and PyTorch's avg divisor.
  void window(int64_t oh, int64_t ow, int64_t& h0, int64_t& h1, int64_t& w0, int64_t& w1,
              int64_t& divisor) const {
    h0 = oh * stride - padding;
    w0 = ow * stride - padding;
    h1 = std::min(h0 + k, h + padding);
    w1 = std::min(w0 + k, w + padding);
    divisor = (h1 - h0) * (w1 - w0);
    h0 = std::max<int64_t>(h0, 0);
    w0 = std::max<int64_t>(w0, 0);
    h1 = std::min(h1, h);
    w1 = std::min(w1, w);
  }
};

template <class T>
void max_forward(const T* x, T* y, const PoolGeometry& g) {
#pragma omp parallel for if (g.n * g.ho * g.wo * g.c > 16384)
  for (int64_t nh = 0; nh < g.n * g.ho; ++nh) {
    const int64_t n = nh / g.ho, oh = nh % g.ho;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      int64_t h0, h1, w0, w1, divisor;
      g.window(oh, ow, h0, h1, w0, w1, divisor);
      T* yr = y + (nh * g.wo + ow) * g.c;
      std::fill(yr, yr + g.c, -std::numeric_limits<T>::infinity());
      for (int64_t ih = h0; ih < h1; ++ih) {
        for (int64_t iw = w0; iw < w1; ++iw) {
          const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
          for (int64_t c = 0; c < g.c; ++c) yr[c] = (xr[c] > yr[c] || xr[c] != xr[c]) ? xr[c] : yr[c];
        }
      }
    }
  }
}

template <class T>
void avg_forward(const T* x, T* y, const PoolGeometry& g) {
#pragma omp parallel for if (g.n * g.ho * g.wo * g.c > 16384)
  for (int64_t nh = 0; nh < g.n * g.ho; ++nh) {
    const int64_t n = nh / g.ho, oh = nh % g.ho;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      int64_t h0, h1, w0, w1, divisor;
      g.window(oh, ow, h0, h1, w0, w1, divisor);
      T* yr = y + (nh * g.wo + ow) * g.c;
      std::fill(yr, yr + g.c, T(0));
      for (int64_t ih = h0; ih < h1; ++ih) {
        for (int64_t iw = w0; iw < w1; ++iw) {
          const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
#pragma omp simd
          for (int64_t c = 0; c < g.c; ++c) yr[c] += xr[c];
        }
      }
      const T inv = T(1) / static_cast<T>(divisor);
#pragma omp simd
      for (int64_t c = 0; c < g.c; ++c) yr[c] *= inv;
    }
  }
}

// Calls body(n, c0, c1) for every image and channel block, in parallel.
template <class Body>
void for_image_channel_blocks(const PoolGeometry& g, Body body) {
  const int64_t blocks = (g.c + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for if (g.n * g.h * g.w * g.c > 16384)
  for (int64_t nb = 0; nb < g.n * blocks; ++nb) {
    const int64_t n = nb / blocks, c0 = (nb % blocks) * kChannelBlock;
    body(n, c0, std::min(c0 + kChannelBlock, g.c));
  }
}

template <class T>
void max_backward(const T* x, const T* gy, T* gx, const PoolGeometry& g) {
  std::fill(gx, gx + g.n * g.h * g.w * g.c, T(0));
  for_image_channel_blocks(g, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        int64_t h0, h1, w0, w1, divisor;
        g.window(oh, ow, h0, h1, w0, w1, divisor);
        const T* gr = gy + ((n * g.ho + oh) * g.wo + ow) * g.c;
        for (int64_t c = c0; c < c1; ++c) {
          int64_t best = -1;
          T best_value = -std::numeric_limits<T>::infinity();
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) {
              const int64_t at = ((n * g.h + ih) * g.w + iw) * g.c + c;
              if (best < 0 || x[at] > best_value || x[at] != x[at]) {
                best = at;
                best_value = x[at];
              }
            }
          }
          gx[best] += gr[c];
        }
      }
    }
  });
}

template <class T>
void avg_backward(const T* gy, T* gx, const PoolGeometry& g) {
  std::fill(gx, gx + g.n * g.h * g.w * g.c, T(0));
  for_image_channel_blocks(g, [&](int64_t n, int64_t c0, int64_t c1) {
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        int64_t h0, h1, w0, w1, divisor;
        g.window(oh, ow, h0, h1, w0, w1, divisor);
        const T* gr = gy + ((n * g.ho + oh) * g.wo + ow) * g.c;
        const T inv = T(1) / static_cast<T>(divisor);
        for (int64_t ih = h0; ih < h1; ++ih) {
          for (int64_t iw = w0; iw < w1; ++iw) {
            T* dr = gx + ((n * g.h + ih) * g.w + iw) * g.c;
            for (int64_t c = c0; c < c1; ++c) dr[c] += gr[c] * inv;
          }
        }
      }
    }
  });
}

Tensor pool(const char* name, const Tensor& x, int kernel, int stride, int padding, bool is_max) {
  detail::check_cpu_float(name, {&x});
  detail::check_rank(name, "input", x, 4, "N, H, W, C");
  PMPL_CHECK(padding <= kernel / 2, "{}: padding {} is more than half the kernel {}", name,
             padding, kernel);
  PoolGeometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), 0, 0, kernel, stride, padding};
  g.ho = detail::window_output_size(name, g.h, kernel, stride, padding);
  g.wo = detail::window_output_size(name, g.w, kernel, stride, padding);
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.c}, x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    if (is_max) max_forward(x.data<T>(), y.data<T>(), g);
    else avg_forward(x.data<T>(), y.data<T>(), g);
  });
  if (needs_grad({&x})) {
    // Only max needs the input (to find the argmax again).
    Tensor saved = is_max ? x.detach() : Tensor();
    record(name, {&x}, {y},
           [saved, g, is_max, name, shape = x.shape(), dtype = x.dtype()](const Tensors& gr) -> Tensors {
             Tensor gx = Tensor::empty(shape, dtype);
             dispatch_float(dtype, name, [&](auto tag) {
               using T = decltype(tag);
               if (is_max) max_backward(saved.data<T>(), gr[0].data<T>(), gx.data<T>(), g);
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
