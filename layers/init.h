// Weight initialisation, torchvision's rules for MobileNetV2: convolutions get Kaiming normal
// with fan_out (std = sqrt(2 / (Cout * kh * kw))), linear layers N(0, 0.01), biases and batchnorm
// shifts zero, batchnorm scales one. Draws come from pmpl's counter-based generator, so the
// values differ from PyTorch's while the distributions match.
#pragma once

#include "core/rng.h"
#include "engine/tensor.h"

namespace pmpl::init {

Tensor kaiming_normal_fan_out(const Shape& shape, int64_t fan_out, Generator& gen);
Tensor normal(const Shape& shape, double std, Generator& gen);

}  // namespace pmpl::init
