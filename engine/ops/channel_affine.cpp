// y = act(x * scale + shift) per channel (the last dimension) in one pass: the deployment
// runtime's folded conv biases (scale absent) and the enhancer's folded batchnorm. Separately,
// the add and the activation would each read and write the whole tensor again.
// Backward, with z = x * scale + shift recomputed and d = dy * act'(z):
//   dx = d * scale, dscale = sum over rows of d * x, dshift = sum over rows of d.
#include <type_traits>

#include "core/math.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {
namespace {

template <class T>
T activate(T z, ChannelActivation act) {
  return math::channel_activation(z, static_cast<int>(act));
}

template <class T>
T activate_grad(T z, ChannelActivation act) {
  return math::channel_activation_grad(z, static_cast<int>(act));
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

#if PMPL_CUDA
// The GPU backward: d and dx in one pass, then the per-channel sums of d and d * x.
Tensors channel_affine_grad_cuda(const Tensor& x, const Tensor& scale, const Tensor& shift, const Tensor& gy,
                                 ChannelActivation act, bool grad_x, bool grad_s, bool grad_t) {
  const int64_t c = x.dim(-1), rows = detail::rows_of(x);
  const float* ps = scale.defined() ? scale.data<float>() : nullptr;
  Tensor d = empty_like(x);
  Tensor dx = grad_x ? (ps != nullptr ? empty_like(x) : d) : Tensor();
  cuda::channel_affine_grad(x.data<float>(), ps, shift.data<float>(), gy.data<float>(), d.data<float>(),
                            grad_x && ps != nullptr ? dx.data<float>() : nullptr, rows, c, static_cast<int>(act));
  Tensor ds, dt;
  if (grad_s || grad_t) {
    const Tensor sums = Tensor::empty(Shape{2, c}, DType::kF64, x.device());
    const Tensor scratch =
        Tensor::empty(Shape{std::max<int64_t>(1, cuda::column_sums_scratch(rows, c))}, DType::kF64, x.device());
    cuda::column_sums(DType::kF32, d.raw_data(), x.raw_data(), rows, c, sums.data<double>(), sums.data<double>() + c,
                      scratch.data<double>());
    if (grad_t) {
      dt = Tensor::empty(Shape{c}, DType::kF32, x.device());
      cuda::doubles_to(sums.data<double>(), 1.0, dt.raw_data(), DType::kF32, c);
    }
    if (grad_s) {
      ds = Tensor::empty(Shape{c}, DType::kF32, x.device());
      cuda::doubles_to(sums.data<double>() + c, 1.0, ds.raw_data(), DType::kF32, c);
    }
  }
  return {dx, ds, dt};
}
#endif

}  // namespace

Tensor channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift, ChannelActivation act) {
  const bool gpu = detail::check_float("channel_affine", {&x, &scale, &shift});
  detail::check_gpu_f32("channel_affine", x);
  PMPL_CHECK(x.rank() >= 1, "channel_affine: input needs a channel dimension, got {}", x.shape().str());
  const int64_t c = x.dim(-1), rows = detail::rows_of(x);
  PMPL_CHECK(shift.defined() && shift.rank() == 1 && shift.dim(0) == c, "channel_affine: shift must be [{}], got {}",
             c, shift.defined() ? shift.shape().str() : "nothing");
  PMPL_CHECK(!scale.defined() || (scale.rank() == 1 && scale.dim(0) == c),
             "channel_affine: scale must be [{}], got {}", c, scale.shape().str());
  Tensor y = empty_like(x);
  if (gpu) {
#if PMPL_CUDA
    cuda::channel_affine(x.data<float>(), scale.defined() ? scale.data<float>() : nullptr, shift.data<float>(),
                         y.data<float>(), rows, c, static_cast<int>(act));
#endif
  } else dispatch_float(x.dtype(), "channel_affine", [&](auto tag) {
    using T = decltype(tag);
    const T* ps = scale.defined() ? scale.data<T>() : nullptr;
    auto run = [&](auto act_tag) {
      affine_rows<T, decltype(act_tag)::value>(x.data<T>(), ps, shift.data<T>(), y.data<T>(), rows, c);
    };
    using A = ChannelActivation;
    switch (act) {
      case A::kNone: run(std::integral_constant<A, A::kNone>()); break;
      case A::kReLU6: run(std::integral_constant<A, A::kReLU6>()); break;
      case A::kHardswish: run(std::integral_constant<A, A::kHardswish>()); break;
      case A::kReLU: run(std::integral_constant<A, A::kReLU>()); break;
      case A::kSiLU: run(std::integral_constant<A, A::kSiLU>()); break;
      case A::kSigmoid: run(std::integral_constant<A, A::kSigmoid>()); break;
      case A::kHardsigmoid: run(std::integral_constant<A, A::kHardsigmoid>()); break;
    }
  });
  if (needs_grad({&x, &scale, &shift})) {
    record("channel_affine", {&x, &scale, &shift}, {y},
           [xs = x.detach(), ss = scale.defined() ? scale.detach() : Tensor(), ts = shift.detach(), act, rows, c,
            grad_x = x.requires_grad(), grad_s = scale.defined() && scale.requires_grad(),
            grad_t = shift.requires_grad()](const Tensors& g) -> Tensors {
#if PMPL_CUDA
             if (xs.is_cuda()) return channel_affine_grad_cuda(xs, ss, ts, g[0], act, grad_x, grad_s, grad_t);
#endif
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
