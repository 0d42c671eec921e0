// CUDA kernels of ops::max_pool2d and ops::avg_pool2d (arithmetic: core/kernels/pool.h), any
// k <= 15, stride and padding <= k / 2, on the legacy default stream, tensors of `dtype` (f32,
// bf16, f16: computed in f32): one thread per output in forward (max records its winning tap),
// one per input in backward (a gather in the CPU's order: the same sums bit for bit). Written
// without a GPU: compiled here, checked against the CPU op by CudaOps.MaxAndAvgPools.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/pool.h"

namespace pmpl::cuda {

// taps: one byte per output (max only; null when no backward will follow).
void pool_forward(DType dtype, bool is_max, const void* x, void* y, uint8_t* taps, const kernels::PoolGeometry& g);
void pool_backward(DType dtype, bool is_max, const void* dy, const uint8_t* taps, void* dx,
                   const kernels::PoolGeometry& g);

}  // namespace pmpl::cuda
