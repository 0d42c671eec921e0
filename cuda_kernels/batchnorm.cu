#include "cuda_kernels/batchnorm.h"

#include "cuda_kernels/column_sums.cuh"
#include "core/math.h"

namespace pmpl::cuda {
namespace {

// sums[2c] = this process's row count (training), before any reduction adds the others'.
__global__ void set_rows_kernel(double* sums, int64_t c, int64_t rows) { sums[2 * c] = static_cast<double>(rows); }

// Per channel: mean and invstd from the sums (training; the row count over every process is
// sums[2c]) or the running statistics (eval), the running statistics' update. stats[2c] keeps the
// row count for the backward.
__global__ void stats_kernel(const double* sums, float* running_mean, float* running_var, bool training,
                             double momentum, double eps, int64_t local_rows, int64_t c, double* stats) {
  const double rows = training ? sums[2 * c] : static_cast<double>(local_rows);
  PMPL_FOR_EACH(j, c) {
    double mean, invstd;
    if (training) {
      const double inv_rows = 1.0 / rows;
      mean = sums[j] * inv_rows;
      double var = sums[c + j] * inv_rows - mean * mean;
      var = var > 0.0 ? var : 0.0;
      invstd = 1.0 / sqrt(var + eps);
      if (running_mean != nullptr && running_var != nullptr) {
        const double unbias = rows / (rows - 1.0);
        running_mean[j] = static_cast<float>((1.0 - momentum) * running_mean[j] + momentum * mean);
        running_var[j] = static_cast<float>((1.0 - momentum) * running_var[j] + momentum * var * unbias);
      }
    } else {
      mean = running_mean[j];
      invstd = 1.0 / sqrt(static_cast<double>(running_var[j]) + eps);
    }
    stats[j] = mean;
    stats[c + j] = invstd;
    if (j == 0) stats[2 * c] = rows;
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

// act: ops::BnActivation's value (0 none, 1 ReLU6, 2 hardswish, 3 ReLU, 4 SiLU).
__device__ __forceinline__ float activate(float v, int act) {
  switch (act) {
    case 1: return math::relu6(v);
    case 2: return math::hardswish(v);
    case 3: return math::relu(v);
    case 4: return math::silu(v);
    default: return v;
  }
}
__device__ __forceinline__ float activation_grad(float v, int act) {
  switch (act) {
    case 1: return math::relu6_grad(v);
    case 2: return math::hardswish_grad(v);
    case 3: return math::relu_grad(v);
    case 4: return math::silu_grad(v);
    default: return 1.0f;
  }
}

template <class S>
__global__ void normalize_kernel(const S* x, const float* gamma, const float* beta, const double* stats, int act, S* y,
                                 int64_t n, int64_t c) {
  PMPL_FOR_EACH(i, n) {
    const int64_t j = i % c;
    store(y, i, activate(pre_activation(load(x, i), stats, gamma, beta, j, c), act));
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

// dz = dy times the fused activation's derivative, and dz * x: the terms of the backward's sums.
template <class S>
struct MaskedGrad {
  const S* x;
  const S* gy;
  const float* gamma;
  const float* beta;
  const double* stats;
  int act;
  int64_t c;
  __device__ float dz(int64_t i, int64_t j, float xv) const {
    const float g = load(gy, i);
    return act == 0 ? g : g * activation_grad(pre_activation(xv, stats, gamma, beta, j, c), act);
  }
  __device__ void operator()(int64_t r, int64_t j, double& a, double& b) const {
    const int64_t i = r * c + j;
    const float xv = load(x, i);
    a = static_cast<double>(dz(i, j, xv));
    b = a * static_cast<double>(xv);
  }
};

// ggamma = sum dz * xhat and gbeta = sum dz, this process's own; sums[c + j] becomes sum dz * xhat,
// the second sum dx needs (added up across processes next, with synchronised statistics).
__global__ void grad_params_kernel(double* sums, const double* stats, int64_t c, float* ggamma, float* gbeta) {
  PMPL_FOR_EACH(j, c) {
    const double mean = stats[j], invstd = stats[c + j];
    const double sum_dz_xhat = (sums[c + j] - mean * sums[j]) * invstd;
    sums[c + j] = sum_dz_xhat;
    ggamma[j] = static_cast<float>(sum_dz_xhat);
    gbeta[j] = static_cast<float>(sums[j]);
  }
}

// The per-channel factors of dx, from the (possibly all-process) sums and row count.
__global__ void grad_factors_kernel(const double* sums, const double* stats, const float* gamma, bool training,
                                    int64_t c, float* k, float* slope, float* mean_gy) {
  const double inv_rows = 1.0 / stats[2 * c];
  PMPL_FOR_EACH(j, c) {
    const double invstd = stats[c + j];
    const double kj = static_cast<double>(gamma[j]) * invstd;
    k[j] = static_cast<float>(kj);
    slope[j] = training ? static_cast<float>(kj * invstd * sums[c + j] * inv_rows) : 0.0f;
    mean_gy[j] = training ? static_cast<float>(sums[j] * inv_rows) : 0.0f;
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

int64_t batchnorm_stats(int64_t c) { return 2 * c + 1; }
int64_t batchnorm_sums(int64_t c) { return 2 * c + 1; }

int64_t batchnorm_scratch(int64_t rows, int64_t c) {
  // the column sums' scratch, and three float vectors (in 2 * c doubles).
  return column_scratch(column_plan(rows, c)) + 2 * c;
}

void batchnorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, double momentum, double eps, int act, void* y,
                       double* stats, int64_t rows, int64_t c, double* sums, double* scratch,
                       const std::function<void()>& reduce_sums) {
  if (c == 0) return;
  const ColumnPlan plan = column_plan(rows, c);
  dispatch_storage(dtype, "batch_norm", [&](auto tag) {
    using S = decltype(tag);
    const auto* px = static_cast<const S*>(x);
    if (training) {
      column_sums_with<true>(Squares<S>{px, c}, plan, sums, sums + c, scratch);
      set_rows_kernel<<<1, 1>>>(sums, c, rows);
      check_launch();
      if (reduce_sums) reduce_sums();
    }
    stats_kernel<<<blocks_for(c), kThreads>>>(sums, running_mean, running_var, training, momentum, eps, rows, c,
                                              stats);
    check_launch();
    if (rows * c == 0) return;
    normalize_kernel<<<blocks_for(rows * c), kThreads>>>(px, gamma, beta, stats, act, static_cast<S*>(y), rows * c, c);
    check_launch();
  });
}

void batchnorm_backward(DType dtype, const void* x, const float* gamma, const float* beta, const void* gy,
                        const double* stats, bool training, int act, void* gx, float* ggamma, float* gbeta,
                        int64_t rows, int64_t c, double* sums, double* scratch,
                        const std::function<void()>& reduce_sums) {
  if (c == 0) return;
  const ColumnPlan plan = column_plan(rows, c);
  float* k = reinterpret_cast<float*>(scratch + column_scratch(plan));
  float* slope = k + c;
  float* mean_gy = slope + c;
  dispatch_storage(dtype, "batch_norm", [&](auto tag) {
    using S = decltype(tag);
    const MaskedGrad<S> g{static_cast<const S*>(x), static_cast<const S*>(gy), gamma, beta, stats, act, c};
    column_sums_with<true>(g, plan, sums, sums + c, scratch);
    grad_params_kernel<<<blocks_for(c), kThreads>>>(sums, stats, c, ggamma, gbeta);
    check_launch();
    if (gx == nullptr || rows * c == 0) return;
    if (reduce_sums) reduce_sums();
    grad_factors_kernel<<<blocks_for(c), kThreads>>>(sums, stats, gamma, training, c, k, slope, mean_gy);
    check_launch();
    input_grad_kernel<<<blocks_for(rows * c), kThreads>>>(g, k, slope, mean_gy, static_cast<S*>(gx), rows * c);
    check_launch();
  });
}

}  // namespace pmpl::cuda
