// torchvision's Conv2dNormActivation: conv (child 0), batchnorm (1) and, unless `act` is empty
// (a projection), the activation (2), which the batchnorm applies in its own pass (the module
// stays for the names and the summary).
#pragma once

#include <memory>
#include <optional>

#include "layers/layers.h"

namespace pmpl {

std::shared_ptr<Sequential> conv_norm_act(std::shared_ptr<Module> conv, int64_t channels,
                                          std::optional<Activation::Kind> act, double bn_eps = 1e-5,
                                          double bn_momentum = 0.1);

}  // namespace pmpl
