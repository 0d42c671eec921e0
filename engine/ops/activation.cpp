// Activations: y = f(x), dx = f'(x) * dy, with f and f' from core/math.h (shared with CUDA:
// cuda_kernels/elementwise.cu runs the same functions).
#include "core/math.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {
namespace {

#if PMPL_CUDA
Tensor unary_cuda(const char* name, const Tensor& x, cuda::Unary op) {
  Tensor y = empty_like(x);
  cuda::unary_forward(op, x.dtype(), x.raw_data(), y.raw_data(), x.numel());
  if (needs_grad({&x})) {
    record(name, {&x}, {y}, [xs = x.detach(), op](const Tensors& g) -> Tensors {
      Tensor dx = empty_like(xs);
      cuda::unary_backward(op, xs.dtype(), xs.raw_data(), g[0].raw_data(), dx.raw_data(), xs.numel());
      return {dx};
    });
  }
  return y;
}
#endif

// cuda_op: this activation's cuda::Unary, as an int so that CPU-only builds need no CUDA header.
template <class Fwd, class Grad>
Tensor unary(const char* name, const Tensor& x, Fwd fwd, Grad grad, int cuda_op) {
  if (detail::check_float(name, {&x})) {
#if PMPL_CUDA
    return unary_cuda(name, x, static_cast<cuda::Unary>(cuda_op));
#endif
  }
  Tensor y = empty_like(x);
  const int64_t n = x.numel();
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for simd if (parallel: n > 65536)
    for (int64_t i = 0; i < n; ++i) py[i] = fwd(px[i]);
  });
  if (needs_grad({&x})) {
    record(name, {&x}, {y}, [xs = x.detach(), name, grad](const Tensors& g) -> Tensors {
      Tensor dx = empty_like(xs);
      const int64_t count = xs.numel();
      dispatch_float(xs.dtype(), name, [&](auto tag) {
        using T = decltype(tag);
        const T* px = xs.data<T>();
        const T* pg = g[0].data<T>();
        T* pd = dx.data<T>();
#pragma omp parallel for simd if (parallel: count > 65536)
        for (int64_t i = 0; i < count; ++i) pd[i] = grad(px[i]) * pg[i];
      });
      return {dx};
    });
  }
  return y;
}

}  // namespace

Tensor relu(const Tensor& x) {
  return unary("relu", x, [](auto v) { return math::relu(v); },
               [](auto v) { return math::relu_grad(v); }, 0);
}

Tensor relu6(const Tensor& x) {
  return unary("relu6", x, [](auto v) { return math::relu6(v); },
               [](auto v) { return math::relu6_grad(v); }, 1);
}

Tensor hardswish(const Tensor& x) {
  return unary("hardswish", x, [](auto v) { return math::hardswish(v); },
               [](auto v) { return math::hardswish_grad(v); }, 2);
}

Tensor hardsigmoid(const Tensor& x) {
  return unary("hardsigmoid", x, [](auto v) { return math::hardsigmoid(v); },
               [](auto v) { return math::hardsigmoid_grad(v); }, 3);
}

Tensor sigmoid(const Tensor& x) {
  return unary("sigmoid", x, [](auto v) { return math::sigmoid(v); },
               [](auto v) { return math::sigmoid_grad(v); }, 4);
}

Tensor silu(const Tensor& x) {
  return unary("silu", x, [](auto v) { return math::silu(v); }, [](auto v) { return math::silu_grad(v); }, 5);
}

}  // namespace pmpl::ops
