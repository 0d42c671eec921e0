// The column matrix of a dense NHWC convolution on the GPU (legacy default stream), for
// ops::conv2d's im2col + cuBLAS path: a row per output pixel holding its window in
// (ki, kj, c) order, zeros where the window leaves the image. Tensors of `dtype` (f32, bf16,
// f16). Written without a GPU: compiled here, checked against the CPU op by
// CudaOps.DenseConv2d where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/indexing.h"

namespace pmpl::cuda {

using kernels::ConvShape;

// cols [images * ho * wo, kh * kw * cin] from x [images, h, w, cin].
void im2col(DType dtype, const void* x, const ConvShape& g, int64_t images, void* cols);
// dx [images, h, w, cin] = the sum of every column entry that copied that element (a gather:
// each thread owns one input element, so no atomics and a fixed order; f32 sums).
void col2im(DType dtype, const void* dcols, const ConvShape& g, int64_t images, void* dx);

}  // namespace pmpl::cuda
