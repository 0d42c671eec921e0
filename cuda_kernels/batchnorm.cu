#include "cuda_kernels/batchnorm.h"

#include "cuda_kernels/reduce.h"
#include "engine/cuda_check.h"
#include "engine/math.h"

namespace pmpl::cuda {
namespace {

constexpr int kThreads = 256;
int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }
void check_launch() { CUDA_CHECK(cudaGetLastError()); }

// Per channel: mean and invstd from the sums (training) or the running statistics (eval), the
// running statistics' update, and the float factors the normalise pass uses.
__global__ void stats_kernel(const double* sums, const double* squares, float* running_mean, float* running_var,
                             bool training, double momentum, double eps, int64_t rows, int64_t c, double* stats) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
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

__global__ void normalize_kernel(const float* x, const float* gamma, const float* beta, const double* stats,
                                 bool relu6, float* y, int64_t n, int64_t c) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t j = i % c;
  // The CPU's float factors: mean and invstd * gamma rounded to float, then (x - mean) * scale + shift.
  const float m = static_cast<float>(stats[j]);
  const float s = static_cast<float>(stats[c + j] * gamma[j]);
  const float v = (x[i] - m) * s + beta[j];
  y[i] = relu6 ? math::relu6(v) : v;
}

// dz = dy masked by the fused ReLU6 (recomputed exactly as the forward computed it).
__global__ void masked_grad_kernel(const float* x, const float* gamma, const float* beta, const float* gy,
                                   const double* stats, bool relu6, float* dz, int64_t n, int64_t c) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t j = i % c;
  if (!relu6) {
    dz[i] = gy[i];
    return;
  }
  const float m = static_cast<float>(stats[j]);
  const float s = static_cast<float>(stats[c + j] * gamma[j]);
  dz[i] = gy[i] * math::relu6_grad((x[i] - m) * s + beta[j]);
}

// ggamma = sum dz * xhat, gbeta = sum dz; the per-channel factors of dx.
__global__ void grad_params_kernel(const double* sum_dz, const double* sum_dz_x, const double* stats,
                                   const float* gamma, bool training, int64_t rows, int64_t c, float* ggamma,
                                   float* gbeta, float* k, float* slope, float* mean_gy) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
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

__global__ void input_grad_kernel(const float* x, const float* dz, const double* stats, const float* k,
                                  const float* slope, const float* mean_gy, float* gx, int64_t n, int64_t c) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t j = i % c;
  const float m = static_cast<float>(stats[j]);
  gx[i] = k[j] * (dz[i] - mean_gy[j]) - slope[j] * (x[i] - m);
}

}  // namespace

int64_t batchnorm_scratch(int64_t rows, int64_t c) {
  // column sums' scratch, two double vectors, and (backward) dz plus three float vectors.
  return column_sums_scratch(rows, c) + 2 * c + (rows * c + 1) / 2 + 2 * c;
}

void batchnorm_forward(const float* x, const float* gamma, const float* beta, float* running_mean, float* running_var,
                       bool training, double momentum, double eps, bool relu6, float* y, double* stats, int64_t rows,
                       int64_t c, double* scratch) {
  if (c == 0) return;
  double* sums = scratch + column_sums_scratch(rows, c);
  double* squares = sums + c;
  if (training) column_sums(x, x, rows, c, sums, squares, scratch);
  stats_kernel<<<blocks_for(c), kThreads>>>(sums, squares, running_mean, running_var, training, momentum, eps, rows,
                                            c, stats);
  check_launch();
  if (rows * c == 0) return;
  normalize_kernel<<<blocks_for(rows * c), kThreads>>>(x, gamma, beta, stats, relu6, y, rows * c, c);
  check_launch();
}

void batchnorm_backward(const float* x, const float* gamma, const float* beta, const float* gy, const double* stats,
                        bool training, bool relu6, float* gx, float* ggamma, float* gbeta, int64_t rows, int64_t c,
                        double* scratch) {
  if (c == 0) return;
  double* sum_dz = scratch + column_sums_scratch(rows, c);
  double* sum_dz_x = sum_dz + c;
  float* dz = reinterpret_cast<float*>(sum_dz_x + c);
  float* k = dz + rows * c + ((rows * c) & 1);
  float* slope = k + c;
  float* mean_gy = slope + c;
  const int64_t n = rows * c;
  if (n > 0) {
    masked_grad_kernel<<<blocks_for(n), kThreads>>>(x, gamma, beta, gy, stats, relu6, dz, n, c);
    check_launch();
  }
  column_sums(dz, x, rows, c, sum_dz, sum_dz_x, scratch);
  grad_params_kernel<<<blocks_for(c), kThreads>>>(sum_dz, sum_dz_x, stats, gamma, training, rows, c, ggamma, gbeta, k,
                                                  slope, mean_gy);
  check_launch();
  if (gx != nullptr && n > 0) {
    input_grad_kernel<<<blocks_for(n), kThreads>>>(x, dz, stats, k, slope, mean_gy, gx, n, c);
    check_launch();
  }
}

}  // namespace pmpl::cuda
