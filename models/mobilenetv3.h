// MobileNetV3 Large and Small exactly as torchvision builds them (Howard et al. 2019; torchvision's
// bneck settings, channel rounding, batchnorm eps 1e-3 / momentum 0.01, squeeze-and-excitation
// with hardsigmoid, the hardswish head, dropout before the last linear layer, initialisation and
// state_dict names "features.N.block.K..."), plus, as MobileNetV2's:
//  - small_input: stem stride 1 and the first stride-2 block at stride 1, for 28-64 px images;
//  - meta_pooling: a Meta-Pooling enhancer ("features.N.enhancer") in every block with an
//    expansion conv, after the depthwise conv + BN + activation and before the
//    squeeze-and-excitation, on the expanded channels (docs/ARCHITECTURE.md, "Backbones").
#pragma once

#include <vector>

#include "models/network.h"

namespace pmpl {

// One bneck row of torchvision's _mobilenet_v3_conf, channels already width-adjusted.
struct V3BlockSpec {
  int64_t in;
  int kernel;
  int64_t expanded, out;
  bool squeeze_excitation, hardswish;
  int stride;
  bool expands() const { return expanded != in; }
  bool residual() const { return stride == 1 && in == out; }
};
struct V3ArchitectureSpec {
  int64_t stem_channels;
  int stem_stride;
  std::vector<V3BlockSpec> blocks;  // features.1 ..
  int64_t last_conv_channels;       // features.(blocks + 1): 6x the last block's output
  int64_t last_channels;            // the classifier's hidden width
};
V3ArchitectureSpec mobilenetv3_spec(bool large, double width, bool small_input);

class MobileNetV3Block : public EnhancedBlock {
 public:
  MobileNetV3Block(const V3BlockSpec& spec, std::shared_ptr<MetaPooling> enhancer, Generator& gen);
  std::string type_name() const override { return "MobileNetV3Block"; }
};

class MobileNetV3 : public PooledNetwork {
 public:
  // `name`: mobilenetv3_large, mobilenetv3_small, or either with _mp (config.meta_pooling).
  MobileNetV3(std::string name, bool large, const ModelConfig& config);
  std::string type_name() const override { return large_ ? "MobileNetV3-Large" : "MobileNetV3-Small"; }

 private:
  bool large_;
};

}  // namespace pmpl
