// CUDA kernels of ops::meta_pool_mix (arithmetic: core/kernels/pool_mix.h: separable row and
// column stages, from one shared-memory tile per block; the strip branch formed from its
// attention), on the legacy default stream. x, the attention, y and their gradients of `dtype`
// (f32, bf16, f16: computed in f32); the weights and their gradient f32. Written without a GPU: compiled here, checked against the
// CPU op by Cuda.MetaPoolMixMatchesTheCpu where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/pool_mix.h"

namespace pmpl::cuda {

// y = the mixture; a_h [N, H, C] and a_w [N, W, C]: the strip attention; w: 8 weights in device
// memory.
void pool_mix_forward(DType dtype, const void* x, const void* a_h, const void* a_w, const float* w, void* y,
                      const kernels::PoolMixShape& s);

// Scratch the backward needs: `winners`, two bytes per element (pass 1's recomputed winners,
// 2-byte aligned), and `partials`, this many doubles (the weights' per-block sums of pass 1 and
// the strip attention's per-tile sums of pass 2).
int64_t pool_mix_partials(const kernels::PoolMixShape& s);

// dx, da_h and da_w (both or neither) and dw (8 floats) from dy; any may be null.
void pool_mix_backward(DType dtype, const void* x, const void* a_h, const void* a_w, const float* w, const void* dy,
                       void* dx, void* da_h, void* da_w, float* dw, uint8_t* winners, double* partials,
                       const kernels::PoolMixShape& s);

}  // namespace pmpl::cuda
