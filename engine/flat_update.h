// In-place, unrecorded updates over element ranges of flat parameter buffers, on the CPU or the
// GPU where the tensors live: the optimisers' steps and the gradient norm and clipping. The
// per-element arithmetic is core/kernels/optim.h's, shared with the CUDA kernels, so the trainer
// never reaches past the engine into cuda_kernels/.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace pmpl::flat {

// [begin, end) element ranges; the tensors below are 1-D buffers holding them.
using Ranges = std::vector<std::pair<int64_t, int64_t>>;

// torch.optim.SGD's step on w (f32 or f64 on the CPU, f32 on a GPU); elements below decay_end
// take weight decay; `first` starts the momentum buffer at the gradient.
void sgd_step(const Tensor& w, const Tensor& g, const Tensor& buffer, const Ranges& ranges, int64_t decay_end,
              double lr, double momentum, double weight_decay, bool nesterov, bool first);
// torch.optim.Adam's step: step_size = lr / (1 - beta1^t), root_c2 = sqrt(1 - beta2^t).
void adam_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Ranges& ranges,
               double beta1, double beta2, double weight_decay, double eps, double step_size, double root_c2);
// torch.optim.AdamW's step: elements below decay_end are first scaled by 1 - lr * weight_decay.
void adamw_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Ranges& ranges,
                int64_t decay_end, double lr, double beta1, double beta2, double weight_decay, double eps,
                double step_size, double root_c2);
// timm's RMSpropTF step (core/kernels/optim.h): `square_avg` starts at 1, `buffer` at 0; rho is
// the square average's decay (timm's alpha).
void rmsprop_tf_step(const Tensor& w, const Tensor& g, const Tensor& square_avg, const Tensor& buffer,
                     const Ranges& ranges, int64_t decay_end, double lr, double rho, double momentum,
                     double weight_decay, double eps);
// timm's Lamb step over parameter tensors (segments): the gradient divided by
// max(||g|| / max_grad_norm, 1) (||g||^2 is `grad_squares`, sum_squares()'s result), Adam's
// moments, u = the bias-corrected direction + wd * w, then w -= lr * trust * u with trust =
// ||w|| / ||u|| per adapting segment. `u` is scratch shaped like w.
struct LambSegment {
  int64_t begin = 0, end = 0;
  bool adapt = false;  // decayed (timm adapts the tensors that take weight decay)
};
void lamb_step(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& u,
               const std::vector<LambSegment>& segments, const Tensor& grad_squares, double max_grad_norm, double lr,
               double beta1, double beta2, double weight_decay, double eps, double c1, double root_c2);
// The sum of g's squares over the ranges, as a one-element f64 tensor on g's device (a GPU sums
// in a fixed order, so every run gets the same bits; the host does not wait for it).
Tensor sum_squares(const Tensor& g, const Ranges& ranges);
// g *= max_norm / (norm + 1e-6) over the ranges when norm = sqrt(sum_squares) > max_norm, the
// factor rounded to float; `sum_squares` is sum_squares()'s result.
void clip_by_norm(const Tensor& g, const Ranges& ranges, const Tensor& sum_squares, double max_norm);

}  // namespace pmpl::flat
