// Optimiser steps and the gradient norm on the GPU (float32, legacy default stream), over one
// contiguous range [begin, end) of a ParameterGroup's flat buffers; arithmetic from
// core/kernels/optim.h. Written without a GPU: compiled here, checked against the CPU
// optimisers by CudaOps.OptimizersMatchTheCpu where a GPU is present.
#pragma once

#include <cstdint>

namespace pmpl::cuda {

// Elements below decay_end take weight decay.
void sgd_step(float* w, const float* g, float* buf, int64_t begin, int64_t end, int64_t decay_end, float lr, float mu,
              float wd, bool nesterov, bool first);
void adam_step(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end, float b1, float b2, float wd,
               float eps, float step_size, float root_c2);
// AdamW: elements below decay_end are scaled by `keep` (1 - lr * wd) first.
void adamw_step(float* w, const float* g, float* m, float* v, int64_t begin, int64_t end, int64_t decay_end, float b1,
                float b2, float keep, float eps, float step_size, float root_c2);
// timm's RMSpropTF; elements below decay_end take weight decay.
void rmsprop_tf_step(float* w, const float* g, float* square_avg, float* buf, int64_t begin, int64_t end,
                     int64_t decay_end, float lr, float rho, float mu, float wd, float eps);

// timm's Lamb over `segments` parameter tensors (table: begin, end, adapt per segment), one block
// each: the gradient divided by max(sqrt(*grad_squares) / max_grad_norm, 1), the moments, u into
// `u`, the norms of w and u reduced in the block, then w += -lr * (u * trust).
void lamb_step(float* w, const float* g, float* m, float* v, float* u, const int64_t* table, int segments,
               const double* grad_squares, double max_grad_norm, float lr, float b1, float b2, float wd, float eps,
               float c1, float root_c2);

// *out (device double) += sum of g[i]^2 over [begin, end): fixed blocks reduced in a fixed tree,
// then the blocks in order, so the same for every run. `scratch`: sum_squares_scratch(n) doubles.
int64_t sum_squares_scratch(int64_t n);
void sum_squares(const float* g, int64_t begin, int64_t end, double* out, double* scratch);
// g[begin, end) *= max_norm / (norm + 1e-6) when norm = sqrt(*sum_squares) > max_norm, the factor
// rounded to float as the CPU rounds it; decided on the device, so the host never waits.
void clip_by_norm(float* g, int64_t begin, int64_t end, const double* sum_squares, double max_norm);

}  // namespace pmpl::cuda
