// Batchnorm on the GPU (float32 data, double statistics, legacy default stream), the device side
// of engine/ops/batchnorm.cpp with the same arithmetic: statistics from per-channel sums and
// sums of squares (deterministic, cuda_kernels/reduce.h), the fused ReLU6 clamped in the
// normalise pass and recomputed in backward. Synchronised statistics (--sync-bn) are not on the
// GPU yet. Written without a GPU: compiled here, checked against the CPU op by Cuda.BatchNorm*.
#pragma once

#include <cstdint>

namespace pmpl::cuda {

// stats: 2 * c doubles (mean, invstd) written here and kept for backward; scratch: doubles as
// batchnorm_scratch(rows, c). Training updates running_mean/var (unbiased variance), eval reads
// them.
int64_t batchnorm_scratch(int64_t rows, int64_t c);
void batchnorm_forward(const float* x, const float* gamma, const float* beta, float* running_mean, float* running_var,
                       bool training, double momentum, double eps, bool relu6, float* y, double* stats, int64_t rows,
                       int64_t c, double* scratch);
// gx may be null; ggamma and gbeta always written.
void batchnorm_backward(const float* x, const float* gamma, const float* beta, const float* gy, const double* stats,
                        bool training, bool relu6, float* gx, float* ggamma, float* gbeta, int64_t rows, int64_t c,
                        double* scratch);

}  // namespace pmpl::cuda
