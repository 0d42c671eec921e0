// Reductions and row-wise ops on the GPU (double accumulation, legacy default stream): the device
// side of engine/ops/{reduce,softmax,cross_entropy,global_pool}.cpp and of the per-channel sums
// behind batchnorm and channel_affine. Tensors of `dtype` (f32, bf16, f16) unless a function says
// float. Every sum is deterministic (cuda_kernels/column_sums.cuh: fixed chunks, fixed trees).
// Written without a GPU: compiled here, checked against the CPU ops by the CudaOps.* tests
// where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace pmpl::cuda {

// Per channel of a [rows, c] matrix: sum_a[j] = sum_r a[r, j] and, when b is given,
// dot_ab[j] = sum_r a[r, j] * b[r, j]. Results in device memory (double); `scratch` holds
// column_sums_scratch(rows, c) doubles.
int64_t column_sums_scratch(int64_t rows, int64_t c);
void column_sums(DType dtype, const void* a, const void* b, int64_t rows, int64_t c, double* sum_a, double* dot_ab,
                 double* scratch);
// out[j] = in[j] * factor rounded to out_dtype, for j < n (device double -> tensor).
void doubles_to(const double* in, double factor, void* out, DType out_dtype, int64_t n);

// y = x summed over the axes where out_dims is 1 and in_dims is not (both right-aligned to five
// dimensions): one thread per output element, the reduced elements in row-major order.
void sum_to(DType dtype, const void* x, const int64_t in_dims[5], void* y, const int64_t out_dims[5]);

// float: over the last axis of [rows, k]: softmax (log_out false) or log_softmax, and their
// backward from the forward's output y.
void softmax_rows(const float* x, float* y, int64_t rows, int64_t k, bool log_out);
void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t k, bool log_out);

// float: label-smoothed cross-entropy of [n, k] logits and n int64 labels: probs and the mean
// loss (one float in device memory; `row_loss`: n doubles of scratch); backward:
// gx = (probs - q) * (*gloss) / n. A label outside [0, k) makes the loss (and its row's
// gradient) NaN instead of reading out of bounds.
void cross_entropy(const float* logits, const int64_t* labels, int64_t n, int64_t k, double eps, float* probs,
                   float* loss, double* row_loss);
void cross_entropy_backward(const float* probs, const int64_t* labels, const float* gloss, int64_t n, int64_t k,
                            double eps, float* gx);

// [n, hw, c] -> [n, c] means, and the backward (every element gets gy / hw).
void global_avg_pool(DType dtype, const void* x, void* y, int64_t n, int64_t hw, int64_t c);
void global_avg_pool_backward(DType dtype, const void* gy, void* gx, int64_t n, int64_t hw, int64_t c);

// [n, h, w, c] -> [n, h + w, c]: means over w per row, then means over h per column; backward.
void strip_pool(DType dtype, const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c);
void strip_pool_backward(DType dtype, const void* gy, void* gx, int64_t n, int64_t h, int64_t w, int64_t c);

}  // namespace pmpl::cuda
