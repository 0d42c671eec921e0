// The column matrix of a dense NHWC convolution on the GPU (float32, legacy default stream), for
// ops::conv2d's im2col + cuBLAS path: a row per output pixel holding its window in
// (ki, kj, c) order, zeros where the window leaves the image. Written without a GPU: compiled
// here, checked against the CPU op by Cuda.Conv2dMatchesTheCpu where a GPU is present.
#pragma once

#include <cstdint>

namespace pmpl::cuda {

struct ConvShape {
  int64_t h, w, cin, kh, kw, ho, wo;
  int stride, padding;
};

// cols [images * ho * wo, kh * kw * cin] from x [images, h, w, cin].
void im2col(const float* x, const ConvShape& g, int64_t images, float* cols);
// dx [images, h, w, cin] = the sum of every column entry that copied that element (a gather:
// each thread owns one input element, so no atomics and a fixed order).
void col2im(const float* dcols, const ConvShape& g, int64_t images, float* dx);

}  // namespace pmpl::cuda
