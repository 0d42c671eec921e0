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
  // MobileNetV3's: ReLU between the convs, hardsigmoid gate; EfficientNet's: SiLU, sigmoid.
  enum class Kind : uint8_t { kMobileNetV3, kEfficientNet };
  SqueezeExcitation(int64_t channels, int64_t squeeze_channels, Kind kind, Generator& gen);
  std::string type_name() const override { return "SqueezeExcitation"; }
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  std::shared_ptr<Conv2d> fc1_, fc2_;
  Kind kind_;
};

}  // namespace pmpl
