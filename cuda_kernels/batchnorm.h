// Batchnorm on the GPU (legacy default stream), the device side of engine/ops/batchnorm.cpp with
// the same arithmetic: statistics from per-channel sums and sums of squares in double
// (deterministic, cuda_kernels/column_sums.cuh), the fused ReLU6 clamped in the normalise pass
// and recomputed in backward, where the masked gradient is never stored (the sums compute it on
// the fly, the input-gradient pass again). x, y, dy and dx are of `dtype` (f32, bf16, f16);
// gamma, beta, running statistics and their gradients are f32 (mixed precision keeps them so).
// Synchronised statistics (--sync-bn) are not on the GPU yet. Written without a GPU: compiled
// here, checked against the CPU op by CudaOps.BatchNormTrainingAndEval.
#pragma once

#include <cstdint>

#include "engine/dtype.h"

namespace pmpl::cuda {

// stats: 2 * c doubles (mean, invstd) written here and kept for backward; scratch: doubles as
// batchnorm_scratch(rows, c). Training updates running_mean/var (unbiased variance), eval reads
// them.
int64_t batchnorm_scratch(int64_t rows, int64_t c);
void batchnorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, double momentum, double eps, bool relu6, void* y,
                       double* stats, int64_t rows, int64_t c, double* scratch);
// gx may be null; ggamma and gbeta always written.
void batchnorm_backward(DType dtype, const void* x, const float* gamma, const float* beta, const void* gy,
                        const double* stats, bool training, bool relu6, void* gx, float* ggamma, float* gbeta,
                        int64_t rows, int64_t c, double* scratch);

}  // namespace pmpl::cuda
