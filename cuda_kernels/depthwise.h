// CUDA kernels of ops::depthwise_conv2d (arithmetic: engine/kernels/depthwise.h), float32, NHWC,
// weight transposed to [k, k, C], on the legacy default stream. Written without a GPU: compiled
// here, checked against the CPU op by Cuda.DepthwiseMatchesTheCpu where a GPU is present.
#pragma once

#include <cstdint>

#include "engine/kernels/depthwise.h"

namespace pmpl::cuda {

// [C, k, k] <-> [k, k, C] on the device.
void dw_transpose_weight(const float* src, float* dst, int64_t c, int64_t kk, bool to_channels_last);
void dw_forward(const float* x, const float* wt, float* y, const kernels::DwShape& g);
void dw_backward_data(const float* gy, const float* wt, float* gx, const kernels::DwShape& g);
// `partials`: dw_weight_chunks(g) * k * k * C floats of scratch.
void dw_backward_weight(const float* x, const float* gy, float* gwt, float* partials, const kernels::DwShape& g);

}  // namespace pmpl::cuda
