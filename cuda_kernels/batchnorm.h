// Batchnorm on the GPU (legacy default stream), the device side of engine/ops/batchnorm.cpp with
// the same arithmetic: statistics from per-channel sums and sums of squares in double
// (deterministic, cuda_kernels/column_sums.cuh), the fused activation (`act`: 0 none, 1 ReLU6,
// 2 hardswish, 3 ReLU, 4 SiLU, as ops::BnActivation) applied in the normalise pass and its
// derivative recomputed in backward, where the masked gradient is never stored (the sums compute
// it on the fly, the input-gradient pass again). x, y, dy and dx are of `dtype` (f32, bf16, f16);
// gamma, beta, running statistics and their gradients are f32 (mixed precision keeps them so).
// Synchronised statistics (--sync-bn): `reduce_sums` is called between the kernels, on the
// device sums, to add the other processes' into them (NCCL). Written without a GPU: compiled
// here, checked against the CPU op by CudaOps.BatchNormTrainingAndEval and
// CudaOps.SynchronisedBatchNormMatchesTheCpu.
#pragma once

#include <cstdint>
#include <functional>

#include "core/dtype.h"

namespace pmpl::cuda {

// Device doubles the caller provides: `stats` (mean, invstd, the row count over all processes),
// written by forward and kept for backward; `sums` (training: per-channel sums, sums of squares
// and the row count, which reduce_sums may add up across processes; backward: the sums behind dx);
// `scratch`.
int64_t batchnorm_stats(int64_t c);
int64_t batchnorm_sums(int64_t c);
int64_t batchnorm_scratch(int64_t rows, int64_t c);
// Training updates running_mean/var (unbiased variance over all processes' rows), eval reads
// them.
void batchnorm_forward(DType dtype, const void* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, double momentum, double eps, int act, void* y,
                       double* stats, int64_t rows, int64_t c, double* sums, double* scratch,
                       const std::function<void()>& reduce_sums);
// gx may be null; ggamma and gbeta (this process's own sums) always written. reduce_sums sees the
// first 2 * c doubles of `sums`: the sums of dz and dz * xhat.
void batchnorm_backward(DType dtype, const void* x, const float* gamma, const float* beta, const void* gy,
                        const double* stats, bool training, int act, void* gx, float* ggamma, float* gbeta,
                        int64_t rows, int64_t c, double* sums, double* scratch,
                        const std::function<void()>& reduce_sums);

}  // namespace pmpl::cuda
