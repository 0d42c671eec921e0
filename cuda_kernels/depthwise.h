// CUDA kernels of ops::depthwise_conv2d (arithmetic: core/kernels/depthwise.h), NHWC, weight
// transposed to [k, k, C], on the legacy default stream. Tensors of `dtype` (f32, bf16, f16:
// computed in f32); the weight gradient's partial sums are f32. Written without a GPU: compiled
// here, checked against the CPU op by Cuda.DepthwiseMatchesTheCpu where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/depthwise.h"

namespace pmpl::cuda {

// [C, k, k] <-> [k, k, C] on the device.
void dw_transpose_weight(DType dtype, const void* src, void* dst, int64_t c, int64_t kk, bool to_channels_last);
void dw_forward(DType dtype, const void* x, const void* wt, void* y, const kernels::DwShape& g);
void dw_backward_data(DType dtype, const void* gy, const void* wt, void* gx, const kernels::DwShape& g);
// `partials`: dw_weight_chunks(g) * k * k * C floats of scratch.
void dw_backward_weight(DType dtype, const void* x, const void* gy, void* gwt, float* partials,
                        const kernels::DwShape& g);

}  // namespace pmpl::cuda
