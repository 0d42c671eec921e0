// softmax and log_softmax over the last axis, row by row, max-shifted for stability (the row
// arithmetic: core/kernels/softmax.h, shared with the CUDA kernels).
#include "core/kernels/softmax.h"
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
  for (int64_t r = 0; r < rows; ++r) kernels::softmax_row(x + r * k, y + r * k, k, log_out);
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
        for (int64_t r = 0; r < rows; ++r) kernels::softmax_row_backward(py + r * k, pg + r * k, pd + r * k, k, log_out);
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
