// Global average pooling ([N, H, W, C] -> [N, C]) and coordinate-attention strip pooling
// ([N, H, W, C] -> [N, H + W, C]: per-row means over W, then per-column means over H).
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {

Tensor global_avg_pool(const Tensor& x) {
  const bool gpu = detail::check_float("global_avg_pool", {&x});
  detail::check_rank("global_avg_pool", "input", x, 4, "N, H, W, C");
  const int64_t n = x.dim(0), hw = x.dim(1) * x.dim(2), c = x.dim(3);
  PMPL_CHECK(hw > 0, "global_avg_pool: empty spatial size in {}", x.shape().str());
  Tensor y = Tensor::empty(Shape{n, c}, x.dtype(), x.device());
  if (gpu) {
#if PMPL_CUDA
    cuda::global_avg_pool(x.dtype(), x.raw_data(), y.raw_data(), n, hw, c);
#endif
  } else dispatch_float(x.dtype(), "global_avg_pool", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    std::vector<double> acc(static_cast<size_t>(c));
    for (int64_t i = 0; i < n; ++i) {
      detail::column_sums(px + i * hw * c, hw, c, acc.data());
      for (int64_t j = 0; j < c; ++j) py[i * c + j] = static_cast<T>(acc[j] / static_cast<double>(hw));
    }
  });
  if (needs_grad({&x})) {
    record("global_avg_pool", {&x}, {y}, [shape = x.shape()](const Tensors& g) -> Tensors {
      const int64_t hw = shape[1] * shape[2];
#if PMPL_CUDA
      if (g[0].is_cuda()) {
        Tensor gx = Tensor::empty(shape, g[0].dtype(), g[0].device());
        cuda::global_avg_pool_backward(g[0].dtype(), g[0].raw_data(), gx.raw_data(), shape[0], hw, shape[3]);
        return {gx};
      }
#endif
      const Tensor g4 = g[0].reshape(Shape{shape[0], 1, 1, shape[3]});
      return {scale(detail::broadcast_to(g4, shape), 1.0 / static_cast<double>(hw))};
    });
  }
  return y;
}

Tensor strip_pool(const Tensor& x) {
  const bool gpu = detail::check_float("strip_pool", {&x});
  detail::check_rank("strip_pool", "input", x, 4, "N, H, W, C");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  PMPL_CHECK(h > 0 && w > 0, "strip_pool: empty spatial size in {}", x.shape().str());
  Tensor y = Tensor::empty(Shape{n, h + w, c}, x.dtype(), x.device());
  if (gpu) {
#if PMPL_CUDA
    cuda::strip_pool(x.dtype(), x.raw_data(), y.raw_data(), n, h, w, c);
#endif
  } else dispatch_float(x.dtype(), "strip_pool", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    // Sums in double: a row of 112 f32 values summed in order would lose ~112 ulps.
#pragma omp parallel if (n * h * w * c > 16384)
    {
      std::vector<double> acc(static_cast<size_t>((h + w) * c));
#pragma omp for
      for (int64_t i = 0; i < n; ++i) {
        double* rows = acc.data();     // [h, c]: sums over w
        double* cols = rows + h * c;   // [w, c]: sums over h
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t r = 0; r < h; ++r) {
          for (int64_t q = 0; q < w; ++q) {
            const T* xr = px + ((i * h + r) * w + q) * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) {
              rows[r * c + j] += static_cast<double>(xr[j]);
              cols[q * c + j] += static_cast<double>(xr[j]);
            }
          }
        }
        T* out = py + i * (h + w) * c;
        for (int64_t j = 0; j < h * c; ++j) out[j] = static_cast<T>(rows[j] / static_cast<double>(w));
        for (int64_t j = 0; j < w * c; ++j) out[h * c + j] = static_cast<T>(cols[j] / static_cast<double>(h));
      }
    }
  });
  if (needs_grad({&x})) {
    record("strip_pool", {&x}, {y}, [shape = x.shape(), dtype = x.dtype()](const Tensors& g) -> Tensors {
      const int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3];
      Tensor gx = Tensor::empty(shape, dtype, g[0].device());
#if PMPL_CUDA
      if (gx.is_cuda()) {
        cuda::strip_pool_backward(gx.dtype(), g[0].raw_data(), gx.raw_data(), n, h, w, c);
        return {gx};
      }
#endif
      dispatch_float(dtype, "strip_pool", [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g[0].data<T>();
        T* pd = gx.data<T>();
        const T inv_w = T(1) / static_cast<T>(w), inv_h = T(1) / static_cast<T>(h);
#pragma omp parallel for if (n * h * w * c > 16384)
        for (int64_t i = 0; i < n; ++i) {
          const T* rows = pg + i * (h + w) * c;
          const T* cols = rows + h * c;
          for (int64_t r = 0; r < h; ++r) {
            for (int64_t q = 0; q < w; ++q) {
              T* dr = pd + ((i * h + r) * w + q) * c;
#pragma omp simd
              for (int64_t j = 0; j < c; ++j) dr[j] = rows[r * c + j] * inv_w + cols[q * c + j] * inv_h;
            }
          }
        }
      });
      return {gx};
    });
  }
  return y;
}

}  // namespace pmpl::ops
