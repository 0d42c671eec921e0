// softmax and log_softmax over the last axis, row by row, max-shifted for stability.
#include <cmath>

#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {
namespace {

// Writes log softmax (log_out) or softmax of each row of x into y.
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t k, bool log_out) {
#pragma omp parallel for if (rows * k > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * k;
    T* yr = y + r * k;
    T m = xr[0];
    for (int64_t j = 1; j < k; ++j) m = xr[j] > m ? xr[j] : m;
    double total = 0.0;
    for (int64_t j = 0; j < k; ++j) total += std::exp(static_cast<double>(xr[j] - m));
    if (log_out) {
      const T shift = m + static_cast<T>(std::log(total));
      for (int64_t j = 0; j < k; ++j) yr[j] = xr[j] - shift;
    } else {
      const double inv = 1.0 / total;
      for (int64_t j = 0; j < k; ++j) yr[j] = static_cast<T>(std::exp(static_cast<double>(xr[j] - m)) * inv);
    }
  }
}

Tensor softmax_impl(const char* name, const Tensor& x, bool log_out) {
  const bool gpu = detail::check_float(name, {&x});
  detail::check_gpu_f32(name, x);
  PMPL_CHECK(x.rank() >= 1 && x.dim(-1) > 0, "{}: needs a non-empty last axis, got shape {}", name,
             x.shape().str());
  Tensor y = empty_like(x);
  const int64_t k = x.dim(-1), rows = detail::rows_of(x);
  if (gpu) {
#if PMPL_CUDA
    cuda::softmax_rows(x.data<float>(), y.data<float>(), rows, k, log_out);
#endif
  } else dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    softmax_rows(x.data<T>(), y.data<T>(), rows, k, log_out);
  });
  if (needs_grad({&x})) {
    record(name, {&x}, {y}, [ys = y.detach(), k, rows, log_out, name](const Tensors& g) -> Tensors {
      Tensor gx = empty_like(ys);
#if PMPL_CUDA
      if (ys.is_cuda()) {
        cuda::softmax_rows_backward(ys.data<float>(), g[0].data<float>(), gx.data<float>(), rows, k, log_out);
        return {gx};
      }
#endif
      dispatch_float(ys.dtype(), name, [&](auto tag) {
        using T = decltype(tag);
        const T* py = ys.data<T>();
        const T* pg = g[0].data<T>();
        T* pd = gx.data<T>();
#pragma omp parallel for if (rows * k > 16384)
        for (int64_t r = 0; r < rows; ++r) {
          const T* yr = py + r * k;
          const T* gr = pg + r * k;
          T* dr = pd + r * k;
          double dot = 0.0;
          if (log_out) {
            for (int64_t j = 0; j < k; ++j) dot += gr[j];
            for (int64_t j = 0; j < k; ++j) dr[j] = gr[j] - std::exp(yr[j]) * static_cast<T>(dot);
          } else {
            for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(gr[j]) * yr[j];
            for (int64_t j = 0; j < k; ++j) dr[j] = yr[j] * (gr[j] - static_cast<T>(dot));
          }
        }
      });
      return {gx};
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl("softmax", x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl("log_softmax", x, true); }

}  // namespace pmpl::ops
