// ShuffleNetV2 x0.5 and x1.0 exactly as torchvision builds them (Ma et al. 2018; stage widths
// [24, 48, 96, 192, 1024] and [24, 116, 232, 464, 1024], repeats 4, 8, 4, PyTorch's default
// initialisation, state_dict names conv1.*, stageN.I.branch1/2.*, conv5.*, fc.*). Its width is in
// its name (--width must be 1). Plus:
//  - dropout before fc when --dropout > 0 (torchvision's has none: --dropout 0 matches it; the
//    names and parameters are the same either way);
//  - small_input: conv1 and the max pool after it at stride 1 (the pool stays, a 3x3 max filter),
//    for 28-64 px images;
//  - meta_pooling: an enhancer ("stageN.I.enhancer") in every unit's branch2, after its depthwise
//    conv + BN, on the branch's channels (16 in all).
// No unit is an additive residual, so --drop-path does not apply.
#pragma once

#include "models/network.h"

namespace pmpl {

class ShuffleUnit : public Module {
 public:
  ShuffleUnit(int64_t in, int64_t out, int stride, std::shared_ptr<MetaPooling> enhancer, Generator& gen);
  std::string type_name() const override { return "ShuffleUnit"; }
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  int64_t half_;  // each branch's channels
  std::shared_ptr<Sequential> branch1_, branch2_;
  std::shared_ptr<MetaPooling> enhancer_;
};

class ShuffleNetV2 : public Network {
 public:
  // half: x0.5, else x1.0.
  ShuffleNetV2(std::string name, bool half, const ModelConfig& config);
  std::string type_name() const override { return "ShuffleNetV2"; }
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  Tensor forward_network(const Tensor& x) override;

 private:
  std::shared_ptr<Sequential> conv1_, stages_[3], conv5_;
  std::shared_ptr<Module> fc_;
  std::shared_ptr<Dropout> dropout_;
  int pool_stride_;
};

}  // namespace pmpl
