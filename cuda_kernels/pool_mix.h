// CUDA kernels of ops::meta_pool_mix (arithmetic: engine/kernels/pool_mix.h: separable row and
// column stages, from one shared-memory tile per block), on the legacy default stream. x, strip,
// y and their gradients of `dtype` (f32, bf16, f16: computed in f32); the weights and their
// gradient f32. Written without a GPU: compiled here, checked against the
// CPU op by Cuda.MetaPoolMixMatchesTheCpu where a GPU is present.
#pragma once

#include <cstdint>

#include "engine/dtype.h"
#include "engine/kernels/pool_mix.h"

namespace pmpl::cuda {

// y = the mixture; w: 8 weights in device memory.
void pool_mix_forward(DType dtype, const void* x, const void* strip, const float* w, void* y,
                      const kernels::PoolMixShape& s);

// Scratch the backward needs: `winners`, two bytes per element (pass 1's recomputed winners,
// 2-byte aligned), and `partials`, this many doubles (one per weight per block of pass 1).
int64_t pool_mix_partials(const kernels::PoolMixShape& s);

// dx (may be null), dstrip = w[1] dy (may be null) and dw (8 floats, may be null) from dy.
void pool_mix_backward(DType dtype, const void* x, const void* strip, const float* w, const void* dy, void* dx,
                       void* dstrip, float* dw, uint8_t* winners, double* partials, const kernels::PoolMixShape& s);

}  // namespace pmpl::cuda
