// Depthwise conv, NHWC (per-element arithmetic: core/kernels/depthwise.h, which the CUDA kernels
// run one thread per element): every loop here runs innermost over channels, which are contiguous in both
// the activations and the transposed weight [k, k, C]. Backward-data gathers (each input pixel
// sums the outputs whose window covers it), so threads never write the same pixel; the weight
// gradient sums fixed row chunks in order, so it does not depend on the thread count.
#include <algorithm>

#include "core/kernels/depthwise.h"
#if PMPL_CUDA
#include "cuda_kernels/depthwise.h"
#endif
#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

using DwGeometry = kernels::DwShape;

// [C, k, k] -> [k, k, C] (and back for the gradient).
template <class T>
void transpose_weight(const T* src, T* dst, int64_t c, int64_t kk, bool to_channels_last) {
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t t = 0; t < kk; ++t) {
      if (to_channels_last) dst[t * c + ch] = src[ch * kk + t];
      else dst[ch * kk + t] = src[t * c + ch];
    }
  }
}

template <class T>
void dw_forward(const T* x, const T* wt, T* y, const DwGeometry& g) {
#pragma omp parallel for if (g.n * g.ho * g.wo * g.c > 16384)
  for (int64_t nh = 0; nh < g.n * g.ho; ++nh) {
    const int64_t n = nh / g.ho, oh = nh % g.ho;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      T* yr = y + (nh * g.wo + ow) * g.c;
      std::fill(yr, yr + g.c, T(0));
      for (int64_t ki = 0; ki < g.k; ++ki) {
        const int64_t ih = oh * g.stride - g.padding + ki;
        if (ih < 0 || ih >= g.h) continue;
        for (int64_t kj = 0; kj < g.k; ++kj) {
          const int64_t iw = ow * g.stride - g.padding + kj;
          if (iw < 0 || iw >= g.w) continue;
          const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
          const T* wr = wt + (ki * g.k + kj) * g.c;
#pragma omp simd
          for (int64_t c = 0; c < g.c; ++c) yr[c] += xr[c] * wr[c];
        }
      }
    }
  }
}

inline int64_t covering_output(int64_t i, int64_t t, const DwGeometry& g, int64_t out_size) {
  return kernels::dw_covering_output(i, t, g.stride, g.padding, out_size);
}

template <class T>
void dw_backward_data(const T* gy, const T* wt, T* gx, const DwGeometry& g) {
#pragma omp parallel for if (g.n * g.h * g.w * g.c > 16384)
  for (int64_t nh = 0; nh < g.n * g.h; ++nh) {
    const int64_t n = nh / g.h, ih = nh % g.h;
    for (int64_t iw = 0; iw < g.w; ++iw) {
      T* dr = gx + (nh * g.w + iw) * g.c;
      std::fill(dr, dr + g.c, T(0));
      for (int64_t ki = 0; ki < g.k; ++ki) {
        const int64_t oh = covering_output(ih, ki, g, g.ho);
        if (oh < 0) continue;
        for (int64_t kj = 0; kj < g.k; ++kj) {
          const int64_t ow = covering_output(iw, kj, g, g.wo);
          if (ow < 0) continue;
          const T* gr = gy + ((n * g.ho + oh) * g.wo + ow) * g.c;
          const T* wr = wt + (ki * g.k + kj) * g.c;
#pragma omp simd
          for (int64_t c = 0; c < g.c; ++c) dr[c] += gr[c] * wr[c];
        }
      }
    }
  }
}

template <class T>
void dw_backward_weight(const T* x, const T* gy, T* gwt, const DwGeometry& g) {
  const int64_t rows = g.n * g.ho, taps = g.k * g.k * g.c;
  const int64_t chunks = kernels::dw_weight_chunks(g);  // as kernels::dw_weight_grad_chunk cuts them
  const Tensor partial_buffer = detail::scratch<T>(chunks * taps);
  T* partial = partial_buffer.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    T* acc = partial + chunk * taps;
    std::fill(acc, acc + taps, T(0));
    for (int64_t nh = chunk * rows / chunks; nh < (chunk + 1) * rows / chunks; ++nh) {
      const int64_t n = nh / g.ho, oh = nh % g.ho;
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const T* gr = gy + (nh * g.wo + ow) * g.c;
        for (int64_t ki = 0; ki < g.k; ++ki) {
          const int64_t ih = oh * g.stride - g.padding + ki;
          if (ih < 0 || ih >= g.h) continue;
          for (int64_t kj = 0; kj < g.k; ++kj) {
            const int64_t iw = ow * g.stride - g.padding + kj;
            if (iw < 0 || iw >= g.w) continue;
            const T* xr = x + ((n * g.h + ih) * g.w + iw) * g.c;
            T* ar = acc + (ki * g.k + kj) * g.c;
#pragma omp simd
            for (int64_t c = 0; c < g.c; ++c) ar[c] += gr[c] * xr[c];
          }
        }
      }
    }
  }
  std::fill(gwt, gwt + taps, T(0));
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const T* acc = partial + chunk * taps;
    for (int64_t t = 0; t < taps; ++t) gwt[t] += acc[t];
  }
}

DwGeometry geometry(const Tensor& x, const Tensor& weight, int stride, int padding) {
  detail::check_rank("depthwise_conv2d", "input", x, 4, "N, H, W, C");
  detail::check_rank("depthwise_conv2d", "weight", weight, 3, "C, k, k");
  PMPL_CHECK(weight.dim(0) == x.dim(3) && weight.dim(1) == weight.dim(2),
             "depthwise_conv2d: weight {} does not fit an input with {} channels (want [C, k, k])",
             weight.shape().str(), x.dim(3));
  DwGeometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), weight.dim(1), 0, 0, stride, padding};
  const int k = static_cast<int>(g.k);
  g.ho = detail::window_output_size("depthwise_conv2d", g.h, k, stride, padding);
  g.wo = detail::window_output_size("depthwise_conv2d", g.w, k, stride, padding);
  return g;
}

#if PMPL_CUDA
// The same op on a GPU (cuda_kernels/depthwise.cu): both tensors on one device, of one dtype
// (f32, bf16, f16).
Tensor depthwise_conv2d_cuda(const Tensor& x, const Tensor& weight, const DwGeometry& g) {
  detail::check_float("depthwise_conv2d", {&x, &weight});
  const DType dtype = x.dtype();
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.c}, dtype, x.device());
  Tensor wt = Tensor::empty(Shape{g.k, g.k, g.c}, dtype, x.device());
  cuda::dw_transpose_weight(dtype, weight.raw_data(), wt.raw_data(), g.c, g.k * g.k, true);
  cuda::dw_forward(dtype, x.raw_data(), wt.raw_data(), y.raw_data(), g);
  if (needs_grad({&x, &weight})) {
    record("depthwise_conv2d", {&x, &weight}, {y},
           [xs = x.detach(), wt, shape_w = weight.shape(), g, grad_x = x.requires_grad(),
            grad_w = weight.requires_grad()](const Tensors& gr) -> Tensors {
             Tensor gx, gw;
             const DType dtype = xs.dtype();
             if (grad_x) {
               gx = Tensor::empty(xs.shape(), dtype, xs.device());
               cuda::dw_backward_data(dtype, gr[0].raw_data(), wt.raw_data(), gx.raw_data(), g);
             }
             if (grad_w) {
               Tensor gwt = Tensor::empty(wt.shape(), dtype, xs.device());
               const Tensor partials =
                   Tensor::empty(Shape{std::max<int64_t>(1, kernels::dw_weight_chunks(g)) * wt.numel()}, DType::kF32,
                                 xs.device());
               cuda::dw_backward_weight(dtype, xs.raw_data(), gr[0].raw_data(), gwt.raw_data(), partials.data<float>(),
                                        g);
               gw = Tensor::empty(shape_w, dtype, xs.device());
               cuda::dw_transpose_weight(dtype, gwt.raw_data(), gw.raw_data(), g.c, g.k * g.k, false);
             }
             return {gx, gw};
           });
  }
  return y;
}
#endif

}  // namespace

Tensor depthwise_conv2d(const Tensor& x, const Tensor& weight, int stride, int padding) {
#if PMPL_CUDA
  if (x.is_cuda()) return depthwise_conv2d_cuda(x, weight, geometry(x, weight, stride, padding));
#endif
  detail::check_cpu_float("depthwise_conv2d", {&x, &weight});
  const DwGeometry g = geometry(x, weight, stride, padding);
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.c}, x.dtype(), x.device());
  Tensor wt = Tensor::empty(Shape{g.k, g.k, g.c}, x.dtype(), x.device());
  dispatch_float(x.dtype(), "depthwise_conv2d", [&](auto tag) {
    using T = decltype(tag);
    transpose_weight(weight.data<T>(), wt.data<T>(), g.c, g.k * g.k, true);
    dw_forward(x.data<T>(), wt.data<T>(), y.data<T>(), g);
  });
  if (needs_grad({&x, &weight})) {
    const bool grad_x = x.requires_grad(), grad_w = weight.requires_grad();
    record("depthwise_conv2d", {&x, &weight}, {y},
           [xs = x.detach(), wt, shape_w = weight.shape(), g, grad_x,
            grad_w](const Tensors& gr) -> Tensors {
             Tensor gx, gw;
             dispatch_float(xs.dtype(), "depthwise_conv2d", [&](auto tag) {
               using T = decltype(tag);
               if (grad_x) {
                 gx = empty_like(xs);
                 dw_backward_data(gr[0].data<T>(), wt.data<T>(), gx.data<T>(), g);
               }
               if (grad_w) {
                 Tensor gwt = empty_like(wt);
                 dw_backward_weight(xs.data<T>(), gr[0].data<T>(), gwt.data<T>(), g);
                 gw = Tensor::empty(shape_w, xs.dtype(), xs.device());
                 transpose_weight(gwt.data<T>(), gw.data<T>(), g.c, g.k * g.k, false);
               }
             });
             return {gx, gw};
           });
  }
  return y;
}

}  // namespace pmpl::ops
