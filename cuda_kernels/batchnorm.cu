#include "cuda_kernels/batchnorm.h"

#include "cuda_kernels/column_sums.cuh"
#include "engine/math.h"

namespace pmpl::cuda {
namespace {

// Per channel: mean and invstd from the sums (training) or the running statistics (eval), the
// running statistics' update.
__global__ void stats_kernel(const double* sums, const double* squares, float* running_mean, float* running_var,
                             bool training, double momentum, double eps, int64_t rows, int64_t c, double* stats) {
  PMPL_FOR_EACH(j, c) {
    double mean, invstd;
    if (training) {
      const double inv_rows = 1.0 / static_cast<double>(rows);
      mean = sums[j] * inv_rows;
      double var = squares[j] * inv_rows - mean * mean;
      var = var > 0.0 ? var : 0.0;
      invstd = 1.0 / sqrt(var + eps);
      if (running_mean != nullptr) {
        const double unbias = static_cast<double>(rows) / static_cast<double>(rows - 1);
        running_mean[j] = static_cast<float>((1.0 - momentum) * running_mean[j] + momentum * mean);
        running_var[j] = static_cast<float>((1.0 - momentum) * running_var[j] + momentum * var * unbias);
      }
    } else {
      mean = running_mean[j];
      invstd = 1.0 / sqrt(static_cast<double>(running_var[j]) + eps);
    }
    stats[j] = mean;
    stats[c + j] = invstd;
  }
}

// The CPU's float factors: the mean and invstd * gamma rounded to float; the pre-activation is
// (x - mean) * scale + shift, so forward and backward recompute it bit for bit.
__device__ __forceinline__ float pre_activation(float x, const double* stats, const float* gamma, const float* beta,
                                                int64_t j, int64_t c) {
  const float m = static_cast<float>(stats[j]);
  const float s = static_cast<float>(stats[c + j] * gamma[j]);
  return (x - m) * s + beta[j];
}

template <class S>
__global__ void normalize_kernel(const S* x, const float* gamma, const float* beta, const double* stats, bool relu6,
                                 S* y, int64_t n, int64_t c) {
  PMPL_FOR_EACH(i, n) {
    const int64_t j = i % c;
    const float v = pre_activation(load(x, i), stats, gamma, beta, j, c);
    store(y, i, relu6 ? math::relu6(v) : v);
  }
}

// x and x^2: the terms of the statistics.
template <class S>
struct Squares {
  const S* x;
  int64_t c;
  __device__ void operator()(int64_t r, int64_t j, double& a, double& b) const {
    a = static_cast<double>(load(x, r * c + j));
    b = a * a;
  }
};

// dz = dy masked by the fused ReLU6, and dz * x: the terms of the backward's sums.
template <class S>
struct MaskedGrad {
  const S* x;
  const S* gy;
  const float* gamma;
  const float* beta;
  const double* stats;
  bool relu6;
  int64_t c;
  __device__ float dz(int64_t i, int64_t j, float xv) const {
    const float g = load(gy, i);
    return relu6 ? g * math::relu6_grad(pre_activation(xv, stats, gamma, beta, j, c)) : g;
  }
  __device__ void operator()(int64_t r, int64_t j, double& a, double& b) const {
    const int64_t i = r * c + j;
    const float xv = load(x, i);
    a = static_cast<double>(dz(i, j, xv));
    b = a * static_cast<double>(xv);
  }
};

// ggamma = sum dz * xhat, gbeta = sum dz; the per-channel factors of dx.
__global__ void grad_params_kernel(const double* sum_dz, const double* sum_dz_x, const double* stats,
                                   const float* gamma, bool training, int64_t rows, int64_t c, float* ggamma,
                                   float* gbeta, float* k, float* slope, float* mean_gy) {
  PMPL_FOR_EACH(j, c) {
    const double mean = stats[j], invstd = stats[c + j];
    const double sum_dz_xhat = (sum_dz_x[j] - mean * sum_dz[j]) * invstd;
    ggamma[j] = static_cast<float>(sum_dz_xhat);
    gbeta[j] = static_cast<float>(sum_dz[j]);
    const double inv_rows = 1.0 / static_cast<double>(rows);
    const double kj = static_cast<double>(gamma[j]) * invstd;
    k[j] = static_cast<float>(kj);
    slope[j] = training ? static_cast<float>(kj * invstd * sum_dz_xhat * inv_rows) : 0.0f;
    mean_gy[j] = training ? static_cast<float>(sum_dz[j] * inv_rows) : 0.0f;
  }
}

template <class S>
__global__ void input_grad_kernel(MaskedGrad<S> g, const float* k, const float* slope, const float* mean_gy, S* gx,
                                  int64_t n) {
  PMPL_FOR_EACH(i, n) {
    const int64_t j = i % g.c;
    const float xv = load(g.x, i);
    const float m = static_cast<float>(g.stats[j]);
    store(gx, i, k[j] * (g.dz(i, j, xv) - mean_gy[j]) - slope[j] * (xv - m));
  }
}

}  // namespace

int64_t batchnorm_scratch(int64_t rows, int64_t c) {
  // the column sums' scratch, two double vectors, and three float vectors (in 2 * c doubles).
  return column_scratch(column_plan(rows, c)) + 4 * c;
}

void batchnorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, double momentum, double eps, bool relu6, void* y,
                       double* stats, int64_t rows, int64_t c, double* scratch) {
  if (c == 0) return;
  const ColumnPlan plan = column_plan(rows, c);
  double* sums = scratch + column_scratch(plan);
  double* squares = sums + c;
  dispatch_storage(dtype, "batch_norm", [&](auto tag) {
    using S = decltype(tag);
    const auto* px = static_cast<const S*>(x);
    if (training) column_sums_with<true>(Squares<S>{px, c}, plan, sums, squares, scratch);
    stats_kernel<<<blocks_for(c), kThreads>>>(sums, squares, running_mean, running_var, training, momentum, eps, rows,
                                              c, stats);
    check_launch();
    if (rows * c == 0) return;
    normalize_kernel<<<blocks_for(rows * c), kThreads>>>(px, gamma, beta, stats, relu6, static_cast<S*>(y), rows * c,
                                                         c);
    check_launch();
  });
}

void batchnorm_backward(DType dtype, const void* x, const float* gamma, const float* beta, const void* gy,
                        const double* stats, bool training, bool relu6, void* gx, float* ggamma, float* gbeta,
                        int64_t rows, int64_t c, double* scratch) {
  if (c == 0) return;
  const ColumnPlan plan = column_plan(rows, c);
  double* sum_dz = scratch + column_scratch(plan);
  double* sum_dz_x = sum_dz + c;
  float* k = reinterpret_cast<float*>(sum_dz_x + c);
  float* slope = k + c;
  float* mean_gy = slope + c;
  dispatch_storage(dtype, "batch_norm", [&](auto tag) {
    using S = decltype(tag);
    const MaskedGrad<S> g{static_cast<const S*>(x), static_cast<const S*>(gy), gamma, beta, stats, relu6, c};
    column_sums_with<true>(g, plan, sum_dz, sum_dz_x, scratch);
    grad_params_kernel<<<blocks_for(c), kThreads>>>(sum_dz, sum_dz_x, stats, gamma, training, rows, c, ggamma, gbeta,
                                                    k, slope, mean_gy);
    check_launch();
    if (gx != nullptr && rows * c > 0) {
      input_grad_kernel<<<blocks_for(rows * c), kThreads>>>(g, k, slope, mean_gy, static_cast<S*>(gx), rows * c);
      check_launch();
    }
  });
}

}  // namespace pmpl::cuda
