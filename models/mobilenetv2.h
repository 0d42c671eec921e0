// MobileNetV2 exactly as torchvision builds it (channel rounding, last-channel rule, dropout
// before the classifier, initialisation, state_dict names), plus:
//  - small_input: stem stride 1 and the first stride-2 stage at stride 1, for 28-64 px images;
//  - meta_pooling: a Meta-Pooling enhancer ("features.N.enhancer") in every block with
//    expansion > 1, after the depthwise conv + BN + ReLU6, searching or fixed from a genotype.
#pragma once

#include <vector>

#include "models/network.h"

namespace pmpl {

// The architecture as data, shared by the trainable network and the deployment runtime: the stem
// width, each inverted-residual block (features.1 .. features.17) and the last conv's width.
struct BlockSpec {
  int64_t index;  // its position in `features`
  int64_t in, out, hidden;
  int stride, expand;
  bool residual() const { return stride == 1 && in == out; }
};
struct ArchitectureSpec {
  int64_t stem_channels;
  int stem_stride;
  std::vector<BlockSpec> blocks;
  int64_t last_channels;
};
ArchitectureSpec mobilenetv2_spec(double width, bool small_input);

class InvertedResidual : public EnhancedBlock {
 public:
  InvertedResidual(int64_t in, int64_t out, int stride, int expand,
                   std::shared_ptr<MetaPooling> enhancer, Generator& gen);
  std::string type_name() const override { return "InvertedResidual"; }
};

class MobileNetV2 : public PooledNetwork {
 public:
  // `name`: the registry's ("mobilenetv2" or "mobilenetv2_mp", with config.meta_pooling).
  MobileNetV2(std::string name, const ModelConfig& config);
  std::string type_name() const override { return "MobileNetV2"; }
};

}  // namespace pmpl
