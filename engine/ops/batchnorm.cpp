// Batchnorm over every dimension but the last (channels, NHWC). Statistics come from one pass
// of sums and sums of squares accumulated in double: for f32 data the cancellation in
// E[x^2] - mean^2 costs ~1e-16 * (mean / std)^2 relative, negligible for activations.
// Backward (training), with xhat = (x - mean) * invstd:
//   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
//   dgamma = sum(dy * xhat) = (sum(dy * x) - mean * sum(dy)) * invstd, dbeta = sum(dy).
// Both directions read the input twice and write once; xhat is never stored. Per element, x -
// mean is formed first: folding the mean into a per-channel constant (y = x * a + b) would cancel
// catastrophically when |mean| >> std, as after ReLU6. A fused ReLU6 clamps in the forward pass;
// its backward recomputes the pre-activation to mask dy before the batchnorm backward.
// Synchronised (data-parallel): the double sums are all-reduced before use, one collective in
// forward (sums, sums of squares, row count) and one in backward (sums behind dx).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/math.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/batchnorm.h"
#endif

namespace pmpl::ops {
namespace {

// The reducer works on tensors; the CPU path keeps its sums in vectors.
void reduce_on_host(const SumReducer& sync, std::vector<double>& values) {
  const Tensor t = Tensor::from_vector(values, Shape{static_cast<int64_t>(values.size())});
  sync(t);
  const double* p = t.data<double>();
  std::copy(p, p + values.size(), values.begin());
}

// The fused activations as types, so each loop is one branch-free SIMD loop per activation.
// kKeepsMasked: the backward stores dy * f'(z) from its first pass for the second, rather than
// computing f'(z) twice; worth an extra write where f' costs an exp (SiLU), not where it is a
// compare (ReLU6: MobileNetV2 would pay the write for nothing).
struct NoActivation {
  static constexpr bool kKeepsMasked = false;
  template <class T> static T f(T v) { return v; }
  template <class T> static T grad(T) { return T(1); }
};
struct ReLU6Activation {
  static constexpr bool kKeepsMasked = false;
  template <class T> static T f(T v) { return math::relu6(v); }
  template <class T> static T grad(T v) { return math::relu6_grad(v); }
};
struct ReLUActivation {
  static constexpr bool kKeepsMasked = false;
  template <class T> static T f(T v) { return math::relu(v); }
  template <class T> static T grad(T v) { return math::relu_grad(v); }
};
struct SiLUActivation {
  static constexpr bool kKeepsMasked = true;
  template <class T> static T f(T v) { return math::silu(v); }
  template <class T> static T grad(T v) { return math::silu_grad(v); }
};
struct HardswishActivation {
  static constexpr bool kKeepsMasked = false;
  template <class T> static T f(T v) { return math::hardswish(v); }
  template <class T> static T grad(T v) { return math::hardswish_grad(v); }
};

template <class F>
decltype(auto) with_activation(BnActivation act, F&& f) {
  switch (act) {
    case BnActivation::kReLU6: return f(ReLU6Activation{});
    case BnActivation::kHardswish: return f(HardswishActivation{});
    case BnActivation::kReLU: return f(ReLUActivation{});
    case BnActivation::kSiLU: return f(SiLUActivation{});
    case BnActivation::kNone: break;
  }
  return f(NoActivation{});
}

// y = act((x - mean) * scale + shift) per channel.
template <class A, class T>
void normalize_rows(const T* x, const T* mean, const T* scale, const T* shift, T* y, int64_t rows, int64_t c) {
#pragma omp parallel for if (rows * c > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = A::f((xr[j] - mean[j]) * scale[j] + shift[j]);
  }
}

#if PMPL_CUDA
// The GPU path: the same arithmetic in cuda_kernels/batchnorm.cu; mean, invstd and the row count
// stay on the device for the backward. With `sync`, the device sums go through it (NCCL) between
// the kernels, as the CPU path's do through MPI.
Tensor batch_norm_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, bool training, double momentum, double eps, BnActivation act,
                       const SumReducer* sync) {
  const int64_t c = x.dim(-1), rows = detail::rows_of(x);
  const Device device = x.device();
  // Captured by the backward, so by value.
  const auto scratch = [device, rows, c] {
    return Tensor::empty(Shape{std::max<int64_t>(1, cuda::batchnorm_scratch(rows, c))}, DType::kF64, device);
  };
  const SumReducer reducer = training && sync != nullptr ? *sync : SumReducer();
  Tensor y = empty_like(x);
  const Tensor stats = Tensor::empty(Shape{cuda::batchnorm_stats(c)}, DType::kF64, device);
  const Tensor sums = Tensor::empty(Shape{cuda::batchnorm_sums(c)}, DType::kF64, device);
  const std::function<void()> reduce_sums = [&reducer, &sums] {
    if (reducer) reducer(sums);
  };
  float* rm = running_mean.defined() ? running_mean.data<float>() : nullptr;
  float* rv = running_var.defined() ? running_var.data<float>() : nullptr;
  cuda::batchnorm_forward(x.dtype(), x.raw_data(), gamma.data<float>(), beta.data<float>(), rm, rv, training,
                          momentum, eps, static_cast<int>(act), y.raw_data(), stats.data<double>(), rows, c,
                          sums.data<double>(),
                          scratch().data<double>(), reduce_sums);
  if (needs_grad({&x, &gamma, &beta})) {
    record("batch_norm", {&x, &gamma, &beta}, {y},
           [xs = x.detach(), gs = gamma.detach(), bs = beta.detach(), stats, training, act, rows, c, scratch,
            reducer, grad_x = x.requires_grad()](const Tensors& g) -> Tensors {
             Tensor gx = grad_x ? empty_like(xs) : Tensor();
             Tensor ggamma = empty_like(gs), gbeta = empty_like(gs);
             const Tensor sums = Tensor::empty(Shape{cuda::batchnorm_sums(c)}, DType::kF64, xs.device());
             const std::function<void()> reduce_sums = [&reducer, &sums, c] {
               if (reducer) reducer(sums.view_slice(0, Shape{2 * c}));
             };
             cuda::batchnorm_backward(xs.dtype(), xs.raw_data(), gs.data<float>(), bs.data<float>(), g[0].raw_data(),
                                      stats.data<double>(), training, static_cast<int>(act),
                                      grad_x ? gx.raw_data() : nullptr,
                                      ggamma.data<float>(), gbeta.data<float>(), rows, c, sums.data<double>(),
                                      scratch().data<double>(), reduce_sums);
             return {gx, ggamma, gbeta};
           });
  }
  return y;
}
#endif

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps,
                  BnActivation activation, const SumReducer* sync) {
  // On a GPU the input may be bf16 or f16 (mixed precision) with f32 parameters and statistics.
  const bool gpu = x.is_cuda();
  if (gpu) {
    detail::check_float("batch_norm", {&x});
    detail::check_float("batch_norm", {&gamma, &beta, &running_mean, &running_var});
    PMPL_CHECK(gamma.device() == x.device() && gamma.dtype() == DType::kF32,
               "batch_norm: on a GPU the parameters must be f32 tensors on the input's device, got {} on {}",
               dtype_name(gamma.dtype()), gamma.device().str());
  } else {
    detail::check_float("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  }
  PMPL_CHECK(x.rank() >= 2, "batch_norm: input needs at least 2 dimensions [..., C], got {}",
             x.shape().str());
  const int64_t c = x.dim(-1), rows = detail::rows_of(x);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var}) {
    PMPL_CHECK(!t->defined() || (t->rank() == 1 && t->dim(0) == c),
               "batch_norm: per-channel tensors must be [{}], got {}", c, t->shape().str());
  }
  PMPL_CHECK(gamma.defined() && beta.defined(), "batch_norm: gamma and beta are required");
  PMPL_CHECK(training || (running_mean.defined() && running_var.defined()),
             "batch_norm: evaluation needs running statistics");
  PMPL_CHECK(!training || rows > 1 || sync != nullptr,
             "batch_norm: training needs more than one value per channel (input {})",
             x.shape().str());
  if (gpu) {
#if PMPL_CUDA
    return batch_norm_cuda(x, gamma, beta, running_mean, running_var, training, momentum, eps, activation, sync);
#endif
  }
  int64_t total_rows = rows;  // with sync: every process's rows

  // mean and invstd in double, shared with the backward.
  auto stats = std::make_shared<std::vector<double>>(static_cast<size_t>(2 * c));
  double* mean = stats->data();
  double* invstd = stats->data() + c;
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    if (training) {
      std::vector<double> sum_sq(static_cast<size_t>(c));
      detail::column_sum_and_dot(px, px, rows, c, mean, sum_sq.data());
      if (sync != nullptr) {  // one collective: the sums, the sums of squares and the row count
        std::vector<double> sums(mean, mean + c);
        sums.insert(sums.end(), sum_sq.begin(), sum_sq.end());
        sums.push_back(static_cast<double>(rows));
        reduce_on_host(*sync, sums);
        std::copy(sums.begin(), sums.begin() + c, mean);
        std::copy(sums.begin() + c, sums.begin() + 2 * c, sum_sq.begin());
        total_rows = static_cast<int64_t>(std::llround(sums.back()));
        PMPL_CHECK(total_rows > 1, "batch_norm: training needs more than one value per channel over all processes");
      }
      const double inv_rows = 1.0 / static_cast<double>(total_rows);
      const double unbias = static_cast<double>(total_rows) / static_cast<double>(total_rows - 1);
      for (int64_t j = 0; j < c; ++j) {
        mean[j] *= inv_rows;
        const double var = std::max(0.0, sum_sq[j] * inv_rows - mean[j] * mean[j]);
        invstd[j] = 1.0 / std::sqrt(var + eps);
        if (running_mean.defined()) {
          T& rm = running_mean.data<T>()[j];
          T& rv = running_var.data<T>()[j];
          rm = static_cast<T>((1.0 - momentum) * rm + momentum * mean[j]);
          rv = static_cast<T>((1.0 - momentum) * rv + momentum * var * unbias);
        }
      }
    } else {
      const T* rm = running_mean.data<T>();
      const T* rv = running_var.data<T>();
      for (int64_t j = 0; j < c; ++j) {
        mean[j] = static_cast<double>(rm[j]);
        invstd[j] = 1.0 / std::sqrt(static_cast<double>(rv[j]) + eps);
      }
    }
    const T* pg = gamma.data<T>();
    std::vector<T> mean_t(static_cast<size_t>(c)), scale(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      mean_t[j] = static_cast<T>(mean[j]);
      scale[j] = static_cast<T>(invstd[j] * pg[j]);
    }
    with_activation(activation, [&](auto act) {
      normalize_rows<decltype(act)>(px, mean_t.data(), scale.data(), beta.data<T>(), y.data<T>(), rows, c);
    });
  });

  if (needs_grad({&x, &gamma, &beta})) {
    const bool grad_x = x.requires_grad();
    record("batch_norm", {&x, &gamma, &beta}, {y},
           [xs = x.detach(), gs = gamma.detach(), bs = beta.detach(), stats, training, grad_x,
            activation, rows, total_rows, c, sync = training && sync != nullptr ? *sync : SumReducer()](
               const Tensors& g) -> Tensors {
             const double* mean = stats->data();
             const double* invstd = stats->data() + c;
             Tensor gx = grad_x ? empty_like(xs) : Tensor();
             Tensor ggamma = empty_like(gs), gbeta = empty_like(gs);
             dispatch_float(xs.dtype(), "batch_norm", [&](auto tag) {
               using T = decltype(tag);
               const T* px = xs.data<T>();
               const T* gy = g[0].data<T>();
               const T* gamma = gs.data<T>();
               const T* shift = bs.data<T>();
               // The forward's own per-channel factors, so a recomputed pre-activation (and the
               // fused ReLU6 mask taken from it) matches the forward bit for bit.
               std::vector<T> mean_t(static_cast<size_t>(c)), scale(static_cast<size_t>(c));
               for (int64_t j = 0; j < c; ++j) {
                 mean_t[j] = static_cast<T>(mean[j]);
                 scale[j] = static_cast<T>(invstd[j] * gamma[j]);
               }
               const T* pm = mean_t.data();
               const T* ps = scale.data();
               // dz = dy, masked by the fused activation's derivative where there is one.
               std::vector<double> sum_gy(static_cast<size_t>(c)), sum_gy_x(static_cast<size_t>(c));
               double* const sums[2] = {sum_gy.data(), sum_gy_x.data()};
               T* const pd = grad_x ? gx.data<T>() : nullptr;
               bool kept = false;  // dz stored in gx by the first pass
               with_activation(activation, [&](auto act) {
                 using A = decltype(act);
                 constexpr bool masked = !std::is_same_v<A, NoActivation>;
                 T* const keep = A::kKeepsMasked ? pd : nullptr;
                 kept = keep != nullptr;
                 detail::chunked_column_sums<2>(rows, c, sums, [=](int64_t begin, int64_t end, double* acc) {
                   double* s_dz = acc;
                   double* s_dz_x = acc + c;
                   // The masked row first, in T, then the double sums: kept apart, both loops
                   // vectorise (mixed, GCC fell back to scalar code).
                   std::vector<T> row(static_cast<size_t>(masked && keep == nullptr ? c : 0));
                   T* dz_row = row.data();
                   for (int64_t r = begin; r < end; ++r) {
                     const T* xr = px + r * c;
                     const T* dz = gy + r * c;
                     if constexpr (masked) {
                       if (keep != nullptr) dz_row = keep + r * c;
#pragma omp simd
                       for (int64_t j = 0; j < c; ++j) dz_row[j] = dz[j] * A::grad((xr[j] - pm[j]) * ps[j] + shift[j]);
                       dz = dz_row;
                     }
#pragma omp simd
                     for (int64_t j = 0; j < c; ++j) {
                       const auto d = static_cast<double>(dz[j]);
                       s_dz[j] += d;
                       s_dz_x[j] += d * static_cast<double>(xr[j]);
                     }
                   }
                 });
               });
               T* pgg = ggamma.data<T>();
               T* pgb = gbeta.data<T>();
               std::vector<double> sum_gy_xhat(static_cast<size_t>(c));
               for (int64_t j = 0; j < c; ++j) {
                 sum_gy_xhat[j] = (sum_gy_x[j] - mean[j] * sum_gy[j]) * invstd[j];
                 pgg[j] = static_cast<T>(sum_gy_xhat[j]);
                 pgb[j] = static_cast<T>(sum_gy[j]);
               }
               if (!grad_x) return;
               if (sync) {  // dx needs the sums over every process's rows
                 std::vector<double> sums = sum_gy;
                 sums.insert(sums.end(), sum_gy_xhat.begin(), sum_gy_xhat.end());
                 reduce_on_host(sync, sums);
                 std::copy(sums.begin(), sums.begin() + c, sum_gy.begin());
                 std::copy(sums.begin() + c, sums.end(), sum_gy_xhat.begin());
               }
               // dx = k * (dz - mean(dz)) - k * invstd * mean(dz * xhat) * (x - mean), with
               // k = gamma * invstd; in eval mode the statistics are constants and dx = k * dz.
               std::vector<T> k(static_cast<size_t>(c)), slope(static_cast<size_t>(c)),
                   mean_gy(static_cast<size_t>(c));
               const double inv_rows = 1.0 / static_cast<double>(total_rows);
               for (int64_t j = 0; j < c; ++j) {
                 const double kj = static_cast<double>(gamma[j]) * invstd[j];
                 k[j] = static_cast<T>(kj);
                 slope[j] = training ? static_cast<T>(kj * invstd[j] * sum_gy_xhat[j] * inv_rows) : T(0);
                 mean_gy[j] = training ? static_cast<T>(sum_gy[j] * inv_rows) : T(0);
               }
               with_activation(activation, [&](auto act) {
                 using A = decltype(act);
#pragma omp parallel for if (rows * c > 65536)
                 for (int64_t r = 0; r < rows; ++r) {
                   const T* xr = px + r * c;
                   const T* gr = gy + r * c;
                   T* dr = pd + r * c;
                   if (kept) {
#pragma omp simd
                     for (int64_t j = 0; j < c; ++j) dr[j] = k[j] * (dr[j] - mean_gy[j]) - slope[j] * (xr[j] - pm[j]);
                   } else {
#pragma omp simd
                     for (int64_t j = 0; j < c; ++j) {
                       const T dz = gr[j] * A::grad((xr[j] - pm[j]) * ps[j] + shift[j]);
                       dr[j] = k[j] * (dz - mean_gy[j]) - slope[j] * (xr[j] - pm[j]);
                     }
                   }
                 }
               });
             });
             return {gx, ggamma, gbeta};
           });
  }
  return y;
}

}  // namespace pmpl::ops
