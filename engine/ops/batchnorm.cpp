// Batchnorm over every dimension but the last (channels, NHWC). Statistics are two-pass and in
// double (mean, then mean squared deviation), which keeps f32 variance accurate when |mean| is
// large against the spread. Backward (training):
//   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
//   dgamma = sum(dy * xhat), dbeta = sum(dy).
#include <cmath>

#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

// y = (x - mean) * invstd * gamma + beta, per channel.
template <class T>
void normalize(const T* x, const double* mean, const double* invstd, const T* gamma, const T* beta,
               T* y, int64_t rows, int64_t c) {
  std::vector<T> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) {
    a[j] = static_cast<T>(invstd[j] * static_cast<double>(gamma[j]));
    b[j] = static_cast<T>(static_cast<double>(beta[j]) - mean[j] * invstd[j] * static_cast<double>(gamma[j]));
  }
#pragma omp parallel for if (rows * c > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) yr[j] = xr[j] * a[j] + b[j];
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
      detail::column_sums(px, rows, c, mean);
      for (int64_t j = 0; j < c; ++j) mean[j] /= static_cast<double>(rows);
      Tensor centered = empty_like(x);
      T* pc = centered.data<T>();
#pragma omp parallel for if (rows * c > 65536)
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < c; ++j) pc[r * c + j] = static_cast<T>(px[r * c + j] - mean[j]);
      }
      std::vector<double> var(static_cast<size_t>(c));
      detail::column_dot(pc, pc, rows, c, var.data());
      for (int64_t j = 0; j < c; ++j) {
        var[j] /= static_cast<double>(rows);
        invstd[j] = 1.0 / std::sqrt(var[j] + eps);
      }
      if (running_mean.defined()) {
        T* rm = running_mean.data<T>();
        T* rv = running_var.data<T>();
        const double unbias = static_cast<double>(rows) / static_cast<double>(rows - 1);
        for (int64_t j = 0; j < c; ++j) {
          rm[j] = static_cast<T>((1.0 - momentum) * rm[j] + momentum * mean[j]);
          rv[j] = static_cast<T>((1.0 - momentum) * rv[j] + momentum * var[j] * unbias);
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
    normalize(px, mean, invstd, gamma.data<T>(), beta.data<T>(), y.data<T>(), rows, c);
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
               Tensor xhat_t = empty_like(xs);
               T* xhat = xhat_t.data<T>();
#pragma omp parallel for if (rows * c > 65536)
               for (int64_t r = 0; r < rows; ++r) {
                 for (int64_t j = 0; j < c; ++j) {
                   xhat[r * c + j] = static_cast<T>((px[r * c + j] - mean[j]) * invstd[j]);
                 }
               }
               std::vector<double> sum_gy(static_cast<size_t>(c)), sum_gy_xhat(static_cast<size_t>(c));
               detail::column_sums(gy, rows, c, sum_gy.data());
               detail::column_dot(gy, xhat, rows, c, sum_gy_xhat.data());
               T* pgg = ggamma.data<T>();
               T* pgb = gbeta.data<T>();
               for (int64_t j = 0; j < c; ++j) {
                 pgg[j] = static_cast<T>(sum_gy_xhat[j]);
                 pgb[j] = static_cast<T>(sum_gy[j]);
               }
               if (!grad_x) return;
               const T* gamma = gs.data<T>();
               std::vector<T> a(static_cast<size_t>(c)), mean_gy(static_cast<size_t>(c)),
                   mean_gy_xhat(static_cast<size_t>(c));
               const double inv_rows = 1.0 / static_cast<double>(rows);
               for (int64_t j = 0; j < c; ++j) {
                 a[j] = static_cast<T>(static_cast<double>(gamma[j]) * invstd[j]);
                 // In eval mode the statistics are constants: dx = gamma * invstd * dy.
                 mean_gy[j] = training ? static_cast<T>(sum_gy[j] * inv_rows) : T(0);
                 mean_gy_xhat[j] = training ? static_cast<T>(sum_gy_xhat[j] * inv_rows) : T(0);
               }
               T* pd = gx.data<T>();
#pragma omp parallel for if (rows * c > 65536)
               for (int64_t r = 0; r < rows; ++r) {
#pragma omp simd
                 for (int64_t j = 0; j < c; ++j) {
                   const int64_t i = r * c + j;
                   pd[i] = a[j] * (gy[i] - mean_gy[j] - xhat[i] * mean_gy_xhat[j]);
                 }
               }
             });
             return {gx, ggamma, gbeta};
           });
  }
  return y;
}

}  // namespace pmpl::ops
