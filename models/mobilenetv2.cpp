#include "models/mobilenetv2.h"

#include <array>
#include <cmath>

#include "engine/ops.h"

namespace pmpl {
namespace {

struct StageSpec {
  int expand;
  int64_t channels;
  int repeats;
  int stride;
};

// torchvision's inverted_residual_setting (t, c, n, s).
constexpr std::array<StageSpec, 7> kStages = {{{1, 16, 1, 1},
                                               {6, 24, 2, 2},
                                               {6, 32, 3, 2},
                                               {6, 64, 4, 2},
                                               {6, 96, 3, 1},
                                               {6, 160, 3, 2},
                                               {6, 320, 1, 1}}};

// torchvision's Conv2dNormActivation with ReLU6: children 0 (conv), 1 (BN), 2 (ReLU6). The BN
// applies the ReLU6 in its own pass; child 2 stays for the names and passes through.
std::shared_ptr<Sequential> conv_bn_relu6(std::shared_ptr<Module> conv, int64_t channels) {
  auto block = std::make_shared<Sequential>();
  block->append(std::move(conv));
  block->append(std::make_shared<BatchNorm>(channels, ops::BnActivation::kReLU6));
  block->append(std::make_shared<ReLU6>(/*fused=*/true));
  return block;
}

}  // namespace

ArchitectureSpec mobilenetv2_spec(double width, bool small_input) {
  ArchitectureSpec spec;
  spec.stem_channels = make_divisible(32.0 * width);
  spec.stem_stride = small_input ? 1 : 2;
  spec.last_channels = make_divisible(1280.0 * std::max(1.0, width));
  int64_t channels = spec.stem_channels;
  bool first_downsample = true;
  for (const StageSpec& stage : kStages) {
    const int64_t out = make_divisible(static_cast<double>(stage.channels) * width);
    int stride = stage.stride;
    if (stride == 2 && first_downsample) {
      first_downsample = false;
      if (small_input) stride = 1;  // the small-input variant keeps this stage's resolution
    }
    for (int i = 0; i < stage.repeats; ++i) {
      // Python's round(): inp * t is an integer (t is), so no tie rule is needed.
      spec.blocks.push_back({static_cast<int64_t>(spec.blocks.size()) + 1, channels, out, channels * stage.expand,
                             i == 0 ? stride : 1, stage.expand});
      channels = out;
    }
  }
  return spec;
}

InvertedResidual::InvertedResidual(int64_t in, int64_t out, int stride, int expand,
                                   std::shared_ptr<MetaPooling> enhancer, Generator& gen)
    : EnhancedBlock(stride == 1 && in == out, "conv") {
  const int64_t hidden = in * expand;
  if (expand != 1) layers().append(conv_bn_relu6(std::make_shared<Conv2d>(in, hidden, 1, 1, false, gen), hidden));
  layers().append(conv_bn_relu6(std::make_shared<DepthwiseConv2d>(hidden, 3, stride, gen), hidden));
  mark_depthwise();
  layers().append(std::make_shared<Conv2d>(hidden, out, 1, 1, false, gen));
  layers().append(std::make_shared<BatchNorm>(out));
  set_enhancer(std::move(enhancer));
}

MobileNetV2::MobileNetV2(std::string name, const ModelConfig& config) : PooledNetwork(std::move(name), config) {
  Generator gen(config.seed);
  const ArchitectureSpec spec = mobilenetv2_spec(config.width, config.small_input);
  features_ = register_module("features", std::make_shared<Sequential>());
  features_->append(conv_bn_relu6(std::make_shared<Conv2d>(3, spec.stem_channels, 3, spec.stem_stride, false, gen),
                                  spec.stem_channels));
  for (const BlockSpec& b : spec.blocks) {
    std::shared_ptr<MetaPooling> enhancer;
    if (b.expand != 1) enhancer = make_enhancer(fmt::format("features.{}.enhancer", b.index), b.hidden, gen);
    features_->append(std::make_shared<InvertedResidual>(b.in, b.out, b.stride, b.expand, enhancer, gen));
  }
  check_genotype_used();
  const int64_t channels = spec.blocks.back().out, last_channels = spec.last_channels;
  features_->append(conv_bn_relu6(std::make_shared<Conv2d>(channels, last_channels, 1, 1, false, gen),
                                  last_channels));
  classifier_ = register_module("classifier", std::make_shared<Sequential>());
  classifier_->append(make_dropout());
  classifier_->append(std::make_shared<Linear>(last_channels, config.num_classes, gen));
}

}  // namespace pmpl
