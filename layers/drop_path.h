// Stochastic depth (timm's drop_path): in training, each sample of a residual branch is zeroed with
// probability p and the others scaled by 1 / (1 - p), so the branch's expectation is unchanged.
// One uniform per sample from `gen` (counter-based: the same masks on any device and after a
// resume that restored gen); the mask [N, 1, 1, 1] multiplies the branch, so the gradient is
// masked the same way.
#pragma once

#include "core/rng.h"
#include "engine/tensor.h"

namespace pmpl {

Tensor drop_path(const Tensor& branch, double p, Generator& gen);

}  // namespace pmpl
