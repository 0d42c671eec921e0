// torchvision's SqueezeExcitation: x * gate(fc2(act(fc1(mean over H, W of x)))), fc1 and fc2 1x1
// convs with biases (state_dict names fc1.*, fc2.*). MobileNetV3 gates with hardsigmoid after a
// ReLU; EfficientNet with sigmoid after SiLU. Built from the engine's recorded ops, so its
// backward and its GPU path are theirs.
#pragma once

#include <memory>

#include "layers/layers.h"

namespace pmpl {

class SqueezeExcitation : public Module {
 public:
  enum class Gate : uint8_t { kHardsigmoid, kSigmoid };
  SqueezeExcitation(int64_t channels, int64_t squeeze_channels, Gate gate, Generator& gen);
  std::string type_name() const override { return "SqueezeExcitation"; }

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  std::shared_ptr<Conv2d> fc1_, fc2_;
  Gate gate_;
};

}  // namespace pmpl
