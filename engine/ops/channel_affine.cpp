// y = act(x * scale + shift) per channel (the last dimension) in one pass: the deployment
// runtime's folded conv biases (scale absent) and the enhancer's folded batchnorm. Separately,
// the add and the activation would each read and write the whole tensor again.
// Backward, with z = x * scale + shift recomputed and d = dy * act'(z):
//   dx = d * scale, dscale = sum over rows of d * x, dshift = sum over rows of d.
#include "engine/math.h"
#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

template <class T>
T activate(T z, ChannelActivation act) {
  switch (act) {
    case ChannelActivation::kReLU6: return math::relu6(z);
    case ChannelActivation::kHardswish: return math::hardswish(z);
    case ChannelActivation::kNone: break;
  }
  return z;
}

template <class T>
T activate_grad(T z, ChannelActivation act) {
  switch (act) {
    case ChannelActivation::kReLU6: return math::relu6_grad(z);
    case ChannelActivation::kHardswish: return math::hardswish_grad(z);
    case ChannelActivation::kNone: break;
  }
  return T(1);
}

// The activation is a template argument so each inner loop is one branch-free SIMD loop.
template <class T, ChannelActivation Act>
void affine_rows(const T* x, const T* scale, const T* shift, T* y, int64_t rows, int64_t c) {
#pragma omp parallel for if (rows * c > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
    if (scale != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) yr[j] = activate(xr[j] * scale[j] + shift[j], Act);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) yr[j] = activate(xr[j] + shift[j], Act);
    }
  }
}

}  // namespace

Tensor channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift, ChannelActivation act) {
  detail::check_cpu_float("channel_affine", {&x, &scale, &shift});
  PMPL_CHECK(x.rank() >= 1, "channel_affine: input needs a channel dimension, got {}", x.shape().str());
  const int64_t c = x.dim(-1), rows = detail::rows_of(x);
  PMPL_CHECK(shift.defined() && shift.rank() == 1 && shift.dim(0) == c, "channel_affine: shift must be [{}], got {}",
             c, shift.defined() ? shift.shape().str() : "nothing");
  PMPL_CHECK(!scale.defined() || (scale.rank() == 1 && scale.dim(0) == c),
             "channel_affine: scale must be [{}], got {}", c, scale.shape().str());
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "channel_affine", [&](auto tag) {
    using T = decltype(tag);
    const T* ps = scale.defined() ? scale.data<T>() : nullptr;
    switch (act) {
      case ChannelActivation::kNone:
        affine_rows<T, ChannelActivation::kNone>(x.data<T>(), ps, shift.data<T>(), y.data<T>(), rows, c);
        break;
      case ChannelActivation::kReLU6:
        affine_rows<T, ChannelActivation::kReLU6>(x.data<T>(), ps, shift.data<T>(), y.data<T>(), rows, c);
        break;
      case ChannelActivation::kHardswish:
        affine_rows<T, ChannelActivation::kHardswish>(x.data<T>(), ps, shift.data<T>(), y.data<T>(), rows, c);
        break;
    }
  });
  if (needs_grad({&x, &scale, &shift})) {
    record("channel_affine", {&x, &scale, &shift}, {y},
           [xs = x.detach(), ss = scale.defined() ? scale.detach() : Tensor(), ts = shift.detach(), act, rows, c,
            grad_x = x.requires_grad(), grad_s = scale.defined() && scale.requires_grad(),
            grad_t = shift.requires_grad()](const Tensors& g) -> Tensors {
             Tensor d = empty_like(xs), dx, ds, dt;
             dispatch_float(xs.dtype(), "channel_affine", [&](auto tag) {
               using T = decltype(tag);
               const T* px = xs.data<T>();
               const T* ps = ss.defined() ? ss.data<T>() : nullptr;
               const T* pt = ts.data<T>();
               const T* pg = g[0].data<T>();
               T* pd = d.data<T>();
#pragma omp parallel for if (rows * c > 65536)
               for (int64_t r = 0; r < rows; ++r) {
                 for (int64_t j = 0; j < c; ++j) {
                   const int64_t i = r * c + j;
                   const T z = ps != nullptr ? px[i] * ps[j] + pt[j] : px[i] + pt[j];
                   pd[i] = pg[i] * activate_grad(z, act);
                 }
               }
               if (grad_x) {
                 dx = ps != nullptr ? empty_like(xs) : d;
                 if (ps != nullptr) {
                   T* pdx = dx.data<T>();
#pragma omp parallel for if (rows * c > 65536)
                   for (int64_t r = 0; r < rows; ++r) {
                     for (int64_t j = 0; j < c; ++j) pdx[r * c + j] = pd[r * c + j] * ps[j];
                   }
                 }
               }
               if (grad_s || grad_t) {
                 std::vector<double> sum_d(static_cast<size_t>(c)), dot_dx(static_cast<size_t>(c));
                 detail::column_sum_and_dot(pd, px, rows, c, sum_d.data(), dot_dx.data());
                 if (grad_s) ds = Tensor::from_vector(dot_dx, Shape{c}).to(xs.dtype());
                 if (grad_t) dt = Tensor::from_vector(sum_d, Shape{c}).to(xs.dtype());
               }
             });
             return {dx, ds, dt};
           });
  }
  return y;
}

}  // namespace pmpl::ops
