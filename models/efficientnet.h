// EfficientNet-B0 exactly as torchvision builds it (Tan & Le 2019; torchvision's MBConv settings,
// channel rounding, SiLU, squeeze-and-excitation on input / 4 channels with SiLU and sigmoid,
// batchnorm eps 1e-5 / momentum 0.1, the 1280-wide head, dropout 0.2 then a linear layer with
// U(-1/sqrt(out), 1/sqrt(out)) weights, state_dict names "features.S.I.block.K..."). torchvision
// trains it with stochastic depth 0.2 on by default; in pmpl that is `--drop-path 0.2` (the same
// rule: rate x i / 16 in the i-th block). Plus, as MobileNetV2's:
//  - small_input: stem stride 1 and the first stride-2 block at stride 1, for 28-64 px images;
//  - meta_pooling: an enhancer ("features.S.I.enhancer") in every block with an expansion conv,
//    after the depthwise conv + BN + SiLU and before the squeeze-and-excitation (15 in B0).
#pragma once

#include <vector>

#include "models/network.h"

namespace pmpl {

struct MBConvSpec {
  int64_t stage, index;  // features.<stage>.<index>
  int64_t in, expanded, out;
  int kernel, stride;
  bool expands() const { return expanded != in; }
  bool residual() const { return stride == 1 && in == out; }
};
struct EfficientNetSpec {
  int64_t stem_channels;
  int stem_stride;
  std::vector<MBConvSpec> blocks;
  int64_t last_channels;  // the head conv's: 4x the last block's output
};
EfficientNetSpec efficientnet_b0_spec(double width, bool small_input);

class MBConv : public EnhancedBlock {
 public:
  MBConv(const MBConvSpec& spec, std::shared_ptr<MetaPooling> enhancer, Generator& gen);
  std::string type_name() const override { return "MBConv"; }
};

class EfficientNet : public PooledNetwork {
 public:
  EfficientNet(std::string name, const ModelConfig& config);
  std::string type_name() const override { return "EfficientNet-B0"; }
};

}  // namespace pmpl
