// Dense conv2d, NHWC, through im2col + GEMM. The column matrix row of an output pixel is its
// window in (ki, kj, c) order, which is exactly a weight row [kh, kw, Cin]: y = cols W^T,
// dW = g^T cols, dcols = g W then scattered back (col2im). Images are processed in chunks so the
// column buffer stays bounded; backward rebuilds the columns rather than keeping them. On a GPU
// the same steps run as cuda_kernels/im2col.cu kernels and cuBLAS (f32 only).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "engine/blas.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/im2col.h"
#endif

namespace pmpl::ops {
namespace {

// The column buffer's bound: small on the CPU (it stays in memory the cores reach fast); on a
// GPU large enough that the stem at batch 256 is one GEMM, so a low-precision weight gradient is
// not rounded once per chunk.
constexpr size_t kMaxColumnBytes = size_t{64} << 20;
constexpr size_t kMaxColumnBytesGpu = size_t{1} << 30;

struct ConvGeometry {
  int64_t n, h, w, cin, cout, kh, kw, ho, wo;
  int stride, padding;
  int64_t k() const { return kh * kw * cin; }
  bool is_identity_window() const { return kh == 1 && kw == 1 && stride == 1 && padding == 0; }
};

template <class T>
void im2col(const T* x, const ConvGeometry& g, int64_t images, T* cols) {
  const int64_t k = g.k();
#pragma omp parallel for if (images * g.ho * g.wo * k > 65536)
  for (int64_t nh = 0; nh < images * g.ho; ++nh) {
    const int64_t n = nh / g.ho, oh = nh % g.ho;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      T* row = cols + (nh * g.wo + ow) * k;
      const int64_t iw0 = ow * g.stride - g.padding;
      for (int64_t ki = 0; ki < g.kh; ++ki) {
        const int64_t ih = oh * g.stride - g.padding + ki;
        T* dst = row + ki * g.kw * g.cin;
        if (ih < 0 || ih >= g.h) {
          std::fill(dst, dst + g.kw * g.cin, T(0));
        } else if (iw0 >= 0 && iw0 + g.kw <= g.w) {
          // The window's row is contiguous in NHWC: one copy, not kw (a stem's 3 channels made
          // each copy 12 bytes, and the calls cost more than the bytes).
          std::memcpy(dst, x + ((n * g.h + ih) * g.w + iw0) * g.cin, sizeof(T) * g.kw * g.cin);
        } else {
          for (int64_t kj = 0; kj < g.kw; ++kj) {
            const int64_t iw = iw0 + kj;
            if (iw < 0 || iw >= g.w) {
              std::fill(dst + kj * g.cin, dst + (kj + 1) * g.cin, T(0));
            } else {
              std::memcpy(dst + kj * g.cin, x + ((n * g.h + ih) * g.w + iw) * g.cin, sizeof(T) * g.cin);
            }
          }
        }
      }
    }
  }
}

// dx += scatter of the column gradients; one image per thread, so no two threads share a pixel.
template <class T>
void col2im_add(const T* dcols, const ConvGeometry& g, int64_t images, T* dx) {
  const int64_t k = g.k();
#pragma omp parallel for if (images > 1)
  for (int64_t n = 0; n < images; ++n) {
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const T* row = dcols + ((n * g.ho + oh) * g.wo + ow) * k;
        for (int64_t ki = 0; ki < g.kh; ++ki) {
          const int64_t ih = oh * g.stride - g.padding + ki;
          if (ih < 0 || ih >= g.h) continue;
          for (int64_t kj = 0; kj < g.kw; ++kj) {
            const int64_t iw = ow * g.stride - g.padding + kj;
            if (iw < 0 || iw >= g.w) continue;
            const T* src = row + (ki * g.kw + kj) * g.cin;
            T* dst = dx + ((n * g.h + ih) * g.w + iw) * g.cin;
#pragma omp simd
            for (int64_t c = 0; c < g.cin; ++c) dst[c] += src[c];
          }
        }
      }
    }
  }
}

// The three steps on the tensors' device: T is f32 or f64 on the CPU, and f32, bf16 or f16 on a
// GPU (`gpu`).
template <class T>
constexpr bool kOnCpu = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
void gemm_on(bool gpu, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
             int64_t ldb, float beta, T* c, int64_t ldc) {
  if (gpu) return blas::gemm_device(dtype_of<T>, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if constexpr (kOnCpu<T>) blas::gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, static_cast<T>(beta), c, ldc);
}

#if PMPL_CUDA
cuda::ConvShape cuda_shape(const ConvGeometry& g) {
  return {g.h, g.w, g.cin, g.kh, g.kw, g.ho, g.wo, g.stride, g.padding};
}
#endif

template <class T>
void im2col_on(bool gpu, const T* x, const ConvGeometry& g, int64_t images, T* cols) {
#if PMPL_CUDA
  if (gpu) return cuda::im2col(dtype_of<T>, x, cuda_shape(g), images, cols);
#endif
  if constexpr (kOnCpu<T>) im2col(x, g, images, cols);
}

// dx of `images` whole images from their column gradients: the CPU adds into a zeroed dx, the
// GPU's gather writes every element (the same sums, in the same order).
template <class T>
void col2im_on(bool gpu, const T* dcols, const ConvGeometry& g, int64_t images, T* dx) {
#if PMPL_CUDA
  if (gpu) return cuda::col2im(dtype_of<T>, dcols, cuda_shape(g), images, dx);
#endif
  if constexpr (kOnCpu<T>) {
    std::fill(dx, dx + images * g.h * g.w * g.cin, T(0));
    col2im_add(dcols, g, images, dx);
  }
}

int64_t images_per_chunk(const ConvGeometry& g, size_t elem, bool gpu) {
  const size_t per_image = static_cast<size_t>(g.ho * g.wo * g.k()) * elem;
  return std::clamp<int64_t>(static_cast<int64_t>((gpu ? kMaxColumnBytesGpu : kMaxColumnBytes) /
                                                  std::max<size_t>(per_image, 1)),
                             1, std::max<int64_t>(g.n, 1));
}

template <class T>
void conv_forward(Device dev, const T* x, const T* w, T* y, const ConvGeometry& g) {
  const bool gpu = dev.is_cuda();
  const int64_t chunk = images_per_chunk(g, sizeof(T), gpu);
  Tensor cols_buffer;
  if (!g.is_identity_window()) {
    cols_buffer = Tensor::empty(Shape{chunk * g.ho * g.wo * g.k()}, dtype_of<T>, dev);
  }
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t images = std::min(chunk, g.n - n0);
    const int64_t rows = images * g.ho * g.wo;
    const T* cols = x + n0 * g.h * g.w * g.cin;
    if (!g.is_identity_window()) {
      im2col_on(gpu, cols, g, images, cols_buffer.data<T>());
      cols = cols_buffer.data<T>();
    }
    gemm_on<T>(gpu, false, true, rows, g.cout, g.k(), cols, g.k(), w, g.k(), 0.0f, y + n0 * g.ho * g.wo * g.cout,
               g.cout);
  }
}

template <class T>
void conv_backward(Device dev, const T* x, const T* w, const T* gy, T* gx, T* gw, const ConvGeometry& g) {
  const bool gpu = dev.is_cuda();
  const int64_t chunk = images_per_chunk(g, sizeof(T), gpu);
  const int64_t k = g.k();
  Tensor cols_buffer = Tensor::empty(Shape{chunk * g.ho * g.wo * k}, dtype_of<T>, dev);
  Tensor dcols_buffer = Tensor::empty(Shape{chunk * g.ho * g.wo * k}, dtype_of<T>, dev);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t images = std::min(chunk, g.n - n0);
    const int64_t rows = images * g.ho * g.wo;
    const T* gy_chunk = gy + n0 * g.ho * g.wo * g.cout;
    if (gw != nullptr) {
      const T* cols = x + n0 * g.h * g.w * g.cin;
      if (!g.is_identity_window()) {
        im2col_on(gpu, cols, g, images, cols_buffer.data<T>());
        cols = cols_buffer.data<T>();
      }
      gemm_on<T>(gpu, true, false, g.cout, k, rows, gy_chunk, g.cout, cols, k, n0 == 0 ? 0.0f : 1.0f, gw, k);
    }
    if (gx != nullptr) {
      T* gx_chunk = gx + n0 * g.h * g.w * g.cin;
      if (g.is_identity_window()) {
        gemm_on<T>(gpu, false, false, rows, k, g.cout, gy_chunk, g.cout, w, k, 0.0f, gx_chunk, k);
      } else {
        T* dcols = dcols_buffer.data<T>();
        gemm_on<T>(gpu, false, false, rows, k, g.cout, gy_chunk, g.cout, w, k, 0.0f, dcols, k);
        col2im_on(gpu, dcols, g, images, gx_chunk);
      }
    }
  }
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, int stride, int padding) {
  detail::check_float("conv2d", {&x, &weight});
  detail::check_rank("conv2d", "input", x, 4, "N, H, W, Cin");
  detail::check_rank("conv2d", "weight", weight, 4, "Cout, kh, kw, Cin");
  PMPL_CHECK(x.dim(3) == weight.dim(3), "conv2d: input has {} channels, weight expects {}",
             x.dim(3), weight.dim(3));
  ConvGeometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), weight.dim(0), weight.dim(1),
                 weight.dim(2), 0, 0, stride, padding};
  g.ho = detail::window_output_size("conv2d", g.h, static_cast<int>(g.kh), stride, padding);
  g.wo = detail::window_output_size("conv2d", g.w, static_cast<int>(g.kw), stride, padding);
  Tensor y = Tensor::empty(Shape{g.n, g.ho, g.wo, g.cout}, x.dtype(), x.device());
  detail::dispatch_device_float(x, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv_forward(x.device(), x.data<T>(), weight.data<T>(), y.data<T>(), g);
  });
  if (needs_grad({&x, &weight})) {
    const bool grad_x = x.requires_grad(), grad_w = weight.requires_grad();
    record("conv2d", {&x, &weight}, {y},
           [xs = x.detach(), ws = weight.detach(), g, grad_x, grad_w](const Tensors& gr) -> Tensors {
             Tensor gx = grad_x ? empty_like(xs) : Tensor();
             Tensor gw = grad_w ? empty_like(ws) : Tensor();
             detail::dispatch_device_float(xs, "conv2d", [&](auto tag) {
               using T = decltype(tag);
               conv_backward(xs.device(), xs.data<T>(), ws.data<T>(), gr[0].data<T>(),
                             grad_x ? gx.data<T>() : nullptr, grad_w ? gw.data<T>() : nullptr, g);
             });
             return {gx, gw};
           });
  }
  return y;
}

}  // namespace pmpl::ops
