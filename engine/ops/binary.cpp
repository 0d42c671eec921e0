// add, sub, mul, scale and axpy_: elementwise with NumPy broadcasting. The backward of a
// broadcast is a sum back to the operand's shape (ops::sum_to_shape).
#include <array>

#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#include "cuda_kernels/fill.h"
#endif

namespace pmpl::ops {
namespace {

constexpr int kRank = Shape::kMaxRank;
using Dims = std::array<int64_t, kRank>;

// Shapes right-aligned into 5 dimensions, with element strides that are 0 where an operand is
// broadcast.
struct BroadcastPlan {
  Shape out;
  Dims dims{};
  Dims a_strides{};
  Dims b_strides{};
};

Dims padded_strides(const Shape& s, const Dims& out_dims) {
  Dims padded{};
  padded.fill(1);
  for (int i = 0; i < s.rank(); ++i) padded[static_cast<size_t>(kRank - s.rank() + i)] = s[i];
  Dims strides{};
  int64_t stride = 1;
  for (int i = kRank - 1; i >= 0; --i) {
    const auto u = static_cast<size_t>(i);
    strides[u] = (padded[u] == 1 && out_dims[u] != 1) ? 0 : stride;
    stride *= padded[u];
  }
  return strides;
}

BroadcastPlan plan_broadcast(const char* op, const Shape& a, const Shape& b) {
  BroadcastPlan plan;
  const int rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(rank));
  plan.dims.fill(1);
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    PMPL_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op,
               a.str(), b.str());
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
    plan.dims[static_cast<size_t>(kRank - rank + i)] = out[static_cast<size_t>(i)];
  }
  plan.out = Shape(out);
  plan.a_strides = padded_strides(a, plan.dims);
  plan.b_strides = padded_strides(b, plan.dims);
  return plan;
}

// y = f(a, b) over the broadcast plan. The innermost dimension is a contiguous or stride-0 run.
template <class T, class F>
void apply_broadcast(const BroadcastPlan& p, const T* a, const T* b, T* y, F f) {
  const Dims& d = p.dims;
  const int64_t outer = d[0] * d[1] * d[2] * d[3], inner = d[4];
  const int64_t sa = p.a_strides[4], sb = p.b_strides[4];
#pragma omp parallel for if (outer * inner > 65536)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rest = o, ao = 0, bo = 0;
    for (int axis = 3; axis >= 0; --axis) {
      const auto u = static_cast<size_t>(axis);
      const int64_t idx = rest % d[u];
      rest /= d[u];
      ao += idx * p.a_strides[u];
      bo += idx * p.b_strides[u];
    }
    T* yo = y + o * inner;
    for (int64_t i = 0; i < inner; ++i) yo[i] = f(a[ao + i * sa], b[bo + i * sb]);
  }
}

#if PMPL_CUDA
Tensor binary_cuda(const char* name, const Tensor& a, const Tensor& b, cuda::Binary op) {
  if (a.shape() == b.shape()) {
    Tensor y = empty_like(a);
    cuda::binary(op, a.dtype(), a.raw_data(), b.raw_data(), y.raw_data(), a.numel(), nullptr);
    return y;
  }
  const kernels::Broadcast5 p = detail::broadcast5(name, a.shape(), b.shape());
  Tensor y = Tensor::empty(plan_broadcast(name, a.shape(), b.shape()).out, a.dtype(), a.device());
  cuda::binary(op, a.dtype(), a.raw_data(), b.raw_data(), y.raw_data(), y.numel(), &p);
  return y;
}
#endif

// cuda_op: the cuda::Binary of this op (an int: CPU-only builds need no CUDA header).
template <class F>
Tensor binary_forward(const char* name, const Tensor& a, const Tensor& b, F f, int cuda_op) {
  if (detail::check_float(name, {&a, &b})) {
#if PMPL_CUDA
    return binary_cuda(name, a, b, static_cast<cuda::Binary>(cuda_op));
#endif
  }
  if (a.shape() == b.shape()) {
    Tensor y = empty_like(a);
    const int64_t n = a.numel();
    dispatch_float(a.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* py = y.data<T>();
#pragma omp parallel for simd if (parallel: n > 65536)
      for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
    });
    return y;
  }
  const BroadcastPlan plan = plan_broadcast(name, a.shape(), b.shape());
  Tensor y = Tensor::empty(plan.out, a.dtype(), a.device());
  dispatch_float(a.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    apply_broadcast(plan, a.data<T>(), b.data<T>(), y.data<T>(), f);
  });
  return y;
}

}  // namespace

namespace detail {

kernels::Broadcast5 broadcast5(const char* op, const Shape& a, const Shape& b) {
  static_assert(kRank == 5, "kernels::Broadcast5 holds five dimensions");
  const BroadcastPlan plan = plan_broadcast(op, a, b);
  kernels::Broadcast5 p{};
  for (int i = 0; i < kRank; ++i) {
    p.dims[i] = plan.dims[static_cast<size_t>(i)];
    p.a[i] = plan.a_strides[static_cast<size_t>(i)];
    p.b[i] = plan.b_strides[static_cast<size_t>(i)];
  }
  return p;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
#if PMPL_CUDA
  if (x.is_cuda()) return binary_cuda("broadcast_to", Tensor::empty(shape, x.dtype(), x.device()), x, cuda::Binary::kSecond);
#endif
  const BroadcastPlan plan = plan_broadcast("broadcast_to", shape, x.shape());
  PMPL_ASSERT(plan.out == shape, "broadcast_to: {} does not broadcast to {}", x.shape().str(),
              shape.str());
  Tensor y = Tensor::empty(shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), "broadcast_to", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    apply_broadcast(plan, px, px, y.data<T>(), [](T, T v) { return v; });
  });
  return y;
}

}  // namespace detail

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("add", a, b, [](auto u, auto v) { return u + v; }, 0);
  if (needs_grad({&a, &b})) {
    record("add", {&a, &b}, {y}, [sa = a.shape(), sb = b.shape()](const Tensors& g) -> Tensors {
      return {sum_to_shape(g[0], sa), sum_to_shape(g[0], sb)};
    });
  }
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("sub", a, b, [](auto u, auto v) { return u - v; }, 1);
  if (needs_grad({&a, &b})) {
    record("sub", {&a, &b}, {y}, [sa = a.shape(), sb = b.shape()](const Tensors& g) -> Tensors {
      return {sum_to_shape(g[0], sa), scale(sum_to_shape(g[0], sb), -1.0)};
    });
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("mul", a, b, [](auto u, auto v) { return u * v; }, 2);
  if (needs_grad({&a, &b})) {
    const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();
    record("mul", {&a, &b}, {y},
           [as = a.detach(), bs = b.detach(), grad_a, grad_b](const Tensors& g) -> Tensors {
             Tensor ga = grad_a ? sum_to_shape(mul(g[0], bs), as.shape()) : Tensor();
             Tensor gb = grad_b ? sum_to_shape(mul(g[0], as), bs.shape()) : Tensor();
             return {ga, gb};
           });
  }
  return y;
}

Tensor scale(const Tensor& x, double factor) {
  Tensor y = empty_like(x);
  const int64_t n = x.numel();
  if (detail::check_float("scale", {&x})) {
#if PMPL_CUDA
    cuda::scale(x.dtype(), x.raw_data(), static_cast<float>(factor), y.raw_data(), n);
#endif
  } else dispatch_float(x.dtype(), "scale", [&](auto tag) {
    using T = decltype(tag);
    const T s = static_cast<T>(factor);
    const T* px = x.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for simd if (parallel: n > 65536)
    for (int64_t i = 0; i < n; ++i) py[i] = px[i] * s;
  });
  if (needs_grad({&x})) {
    record("scale", {&x}, {y}, [factor](const Tensors& g) -> Tensors {
      return {scale(g[0], factor)};
    });
  }
  return y;
}

void axpy_(Tensor& dst, double alpha, const Tensor& src) {
  const bool gpu = detail::check_float("axpy_", {&dst, &src});
  PMPL_CHECK(dst.shape() == src.shape(), "axpy_: shapes {} and {} differ", dst.shape().str(),
             src.shape().str());
  const int64_t n = dst.numel();
  if (gpu) {
#if PMPL_CUDA
    cuda::axpy(dst.dtype(), dst.raw_data(), static_cast<float>(alpha), src.raw_data(), n);
#endif
    return;
  }
  dispatch_float(dst.dtype(), "axpy_", [&](auto tag) {
    using T = decltype(tag);
    const T a = static_cast<T>(alpha);
    const T* ps = src.data<T>();
    T* pd = dst.data<T>();
#pragma omp parallel for simd if (parallel: n > 65536)
    for (int64_t i = 0; i < n; ++i) pd[i] += a * ps[i];
  });
}

void scale_(const Tensor& x, double factor) {
  const int64_t n = x.numel();
  if (detail::check_float("scale_", {&x})) {
#if PMPL_CUDA
    cuda::scale(x.dtype(), x.raw_data(), static_cast<float>(factor), x.raw_data(), n);
#endif
    return;
  }
  dispatch_float(x.dtype(), "scale_", [&](auto tag) {
    using T = decltype(tag);
    const T f = static_cast<T>(factor);
    T* p = x.data<T>();
#pragma omp parallel for simd if (parallel: n > 65536)
    for (int64_t i = 0; i < n; ++i) p[i] *= f;
  });
}

void increment_(const Tensor& counter, int64_t delta) {
  PMPL_ASSERT(counter.dtype() == DType::kI64 && counter.numel() == 1, "increment_ takes one i64 element, got {} {}",
              dtype_name(counter.dtype()), counter.shape().str());
  if (counter.is_cuda()) {
#if PMPL_CUDA
    cuda::add_to_counter(counter.data<int64_t>(), delta);
#endif
    return;
  }
  *counter.data<int64_t>() += delta;
}

}  // namespace pmpl::ops
