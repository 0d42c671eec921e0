// Batchnorm over every dimension but the last (channels, NHWC). Statistics come from one pass
// of sums and sums of squares accumulated in double: for f32 data the cancellation in
// E[x^2] - mean^2 costs ~1e-16 * (mean / std)^2 relative, negligible for activations.
// Backward (training), with xhat = (x - mean) * invstd:
//   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
//   dgamma = sum(dy * xhat) = (sum(dy * x) - mean * sum(dy)) * invstd, dbeta = sum(dy).
// Both directions read the input twice and write once; xhat is never stored. Per element, x -
// mean is formed first: folding the mean into a per-channel constant (y = x * a + b) would cancel
// catastrophically when |mean| >> std, as after ReLU6.
#include <cmath>

#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

// y = (x - mean) * scale + shift, per channel.
template <class T>
void normalize_rows(const T* x, const T* mean, const T* scale, const T* shift, T* y, int64_t rows,
                    int64_t c) {
#pragma omp parallel for if (rows * c > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = (xr[j] - mean[j]) * scale[j] + shift[j];
  }
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps) {
  detail::check_cpu_float("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
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
  PMPL_CHECK(!training || rows > 1,
             "batch_norm: training needs more than one value per channel (input {})",
             x.shape().str());

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
      const double inv_rows = 1.0 / static_cast<double>(rows);
      const double unbias = static_cast<double>(rows) / static_cast<double>(rows - 1);
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
    normalize_rows(px, mean_t.data(), scale.data(), beta.data<T>(), y.data<T>(), rows, c);
  });

  if (needs_grad({&x, &gamma, &beta})) {
    const bool grad_x = x.requires_grad();
    record("batch_norm", {&x, &gamma, &beta}, {y},
           [xs = x.detach(), gs = gamma.detach(), stats, training, grad_x, rows,
            c](const Tensors& g) -> Tensors {
             const double* mean = stats->data();
             const double* invstd = stats->data() + c;
             Tensor gx = grad_x ? empty_like(xs) : Tensor();
             Tensor ggamma = empty_like(gs), gbeta = empty_like(gs);
             dispatch_float(xs.dtype(), "batch_norm", [&](auto tag) {
               using T = decltype(tag);
               const T* px = xs.data<T>();
               const T* gy = g[0].data<T>();
               std::vector<double> sum_gy(static_cast<size_t>(c)), sum_gy_x(static_cast<size_t>(c));
               detail::column_sum_and_dot(gy, px, rows, c, sum_gy.data(), sum_gy_x.data());
               T* pgg = ggamma.data<T>();
               T* pgb = gbeta.data<T>();
               std::vector<double> sum_gy_xhat(static_cast<size_t>(c));
               for (int64_t j = 0; j < c; ++j) {
                 sum_gy_xhat[j] = (sum_gy_x[j] - mean[j] * sum_gy[j]) * invstd[j];
                 pgg[j] = static_cast<T>(sum_gy_xhat[j]);
                 pgb[j] = static_cast<T>(sum_gy[j]);
               }
               if (!grad_x) return;
               // dx = k * (dy - mean(dy)) - k * invstd * mean(dy * xhat) * (x - mean), with
               // k = gamma * invstd; in eval mode the statistics are constants and dx = k * dy.
               const T* gamma = gs.data<T>();
               std::vector<T> k(static_cast<size_t>(c)), slope(static_cast<size_t>(c)),
                   mean_gy(static_cast<size_t>(c)), mean_t(static_cast<size_t>(c));
               const double inv_rows = 1.0 / static_cast<double>(rows);
               for (int64_t j = 0; j < c; ++j) {
                 const double kj = static_cast<double>(gamma[j]) * invstd[j];
                 k[j] = static_cast<T>(kj);
                 slope[j] = training ? static_cast<T>(kj * invstd[j] * sum_gy_xhat[j] * inv_rows) : T(0);
                 mean_gy[j] = training ? static_cast<T>(sum_gy[j] * inv_rows) : T(0);
                 mean_t[j] = static_cast<T>(mean[j]);
               }
               T* pd = gx.data<T>();
#pragma omp parallel for if (rows * c > 65536)
               for (int64_t r = 0; r < rows; ++r) {
#pragma omp simd
                 for (int64_t j = 0; j < c; ++j) {
                   const int64_t i = r * c + j;
                   pd[i] = k[j] * (gy[i] - mean_gy[j]) - slope[j] * (px[i] - mean_t[j]);
                 }
               }
             });
             return {gx, ggamma, gbeta};
           });
  }
  return y;
}

}  // namespace pmpl::ops
