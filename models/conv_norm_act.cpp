#include "models/conv_norm_act.h"

namespace pmpl {

std::shared_ptr<Sequential> conv_norm_act(std::shared_ptr<Module> conv, int64_t channels,
                                          std::optional<Activation::Kind> act, double bn_eps, double bn_momentum) {
  auto block = std::make_shared<Sequential>();
  block->append(std::move(conv));
  if (!act) {
    block->append(std::make_shared<BatchNorm>(channels, ops::BnActivation::kNone, 1.0, 0.0, bn_eps, bn_momentum));
    return block;
  }
  auto activation = std::make_shared<Activation>(*act, /*fused=*/true);
  block->append(std::make_shared<BatchNorm>(channels, activation->bn_activation(), 1.0, 0.0, bn_eps, bn_momentum));
  block->append(std::move(activation));
  return block;
}

}  // namespace pmpl
