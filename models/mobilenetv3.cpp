#include "models/mobilenetv3.h"

#include <array>

#include "engine/ops.h"
#include "layers/squeeze_excitation.h"
#include "models/conv_norm_act.h"

namespace pmpl {
namespace {

// torchvision's norm_layer for MobileNetV3: BatchNorm2d(eps=0.001, momentum=0.01).
constexpr double kBnEps = 1e-3;
constexpr double kBnMomentum = 0.01;

// (input, kernel, expanded, out, SE, HS, stride) as torchvision's bneck_conf rows, before width.
struct Row {
  int64_t in;
  int kernel;
  int64_t expanded, out;
  bool se, hs;
  int stride;
};
constexpr std::array<Row, 15> kLarge = {{{16, 3, 16, 16, false, false, 1},
                                         {16, 3, 64, 24, false, false, 2},
                                         {24, 3, 72, 24, false, false, 1},
                                         {24, 5, 72, 40, true, false, 2},
                                         {40, 5, 120, 40, true, false, 1},
                                         {40, 5, 120, 40, true, false, 1},
                                         {40, 3, 240, 80, false, true, 2},
                                         {80, 3, 200, 80, false, true, 1},
                                         {80, 3, 184, 80, false, true, 1},
                                         {80, 3, 184, 80, false, true, 1},
                                         {80, 3, 480, 112, true, true, 1},
                                         {112, 3, 672, 112, true, true, 1},
                                         {112, 5, 672, 160, true, true, 2},
                                         {160, 5, 960, 160, true, true, 1},
                                         {160, 5, 960, 160, true, true, 1}}};
constexpr std::array<Row, 11> kSmall = {{{16, 3, 16, 16, true, false, 2},
                                         {16, 3, 72, 24, false, false, 2},
                                         {24, 3, 88, 24, false, false, 1},
                                         {24, 5, 96, 40, true, true, 2},
                                         {40, 5, 240, 40, true, true, 1},
                                         {40, 5, 240, 40, true, true, 1},
                                         {40, 5, 120, 48, true, true, 1},
                                         {48, 5, 144, 48, true, true, 1},
                                         {48, 5, 288, 96, true, true, 2},
                                         {96, 5, 576, 96, true, true, 1},
                                         {96, 5, 576, 96, true, true, 1}}};

std::shared_ptr<Sequential> conv_bn_act(std::shared_ptr<Module> conv, int64_t channels,
                                        std::optional<Activation::Kind> act) {
  return conv_norm_act(std::move(conv), channels, act, kBnEps, kBnMomentum);
}

}  // namespace

V3ArchitectureSpec mobilenetv3_spec(bool large, double width, bool small_input) {
  const auto adjust = [width](int64_t c) { return make_divisible(static_cast<double>(c) * width); };
  V3ArchitectureSpec spec;
  spec.stem_stride = small_input ? 1 : 2;
  bool first_downsample = true;
  const auto add = [&](const Row& r) {
    int stride = r.stride;
    if (stride == 2 && first_downsample) {
      first_downsample = false;
      if (small_input) stride = 1;  // the small-input variant keeps this block's resolution
    }
    spec.blocks.push_back({adjust(r.in), r.kernel, adjust(r.expanded), adjust(r.out), r.se, r.hs, stride});
  };
  if (large) {
    for (const Row& r : kLarge) add(r);
  } else {
    for (const Row& r : kSmall) add(r);
  }
  spec.stem_channels = spec.blocks.front().in;
  spec.last_conv_channels = 6 * spec.blocks.back().out;
  spec.last_channels = adjust(large ? 1280 : 1024);
  return spec;
}

MobileNetV3Block::MobileNetV3Block(const V3BlockSpec& s, std::shared_ptr<MetaPooling> enhancer, Generator& gen)
    : EnhancedBlock(s.residual(), "block") {
  const auto act = s.hardswish ? Activation::Kind::kHardswish : Activation::Kind::kReLU;
  if (s.expands()) layers().append(conv_bn_act(std::make_shared<Conv2d>(s.in, s.expanded, 1, 1, false, gen), s.expanded, act));
  layers().append(conv_bn_act(std::make_shared<DepthwiseConv2d>(s.expanded, s.kernel, s.stride, gen), s.expanded, act));
  mark_depthwise();
  if (s.squeeze_excitation) {
    layers().append(std::make_shared<SqueezeExcitation>(s.expanded, make_divisible(static_cast<double>(s.expanded / 4)),
                                                        SqueezeExcitation::Kind::kMobileNetV3, gen));
  }
  layers().append(conv_bn_act(std::make_shared<Conv2d>(s.expanded, s.out, 1, 1, false, gen), s.out, std::nullopt));
  set_enhancer(std::move(enhancer));
}

MobileNetV3::MobileNetV3(std::string name, bool large, const ModelConfig& config)
    : PooledNetwork(std::move(name), config), large_(large) {
  Generator gen(config.seed);
  const V3ArchitectureSpec spec = mobilenetv3_spec(large, config.width, config.small_input);
  features_ = register_module("features", std::make_shared<Sequential>());
  features_->append(conv_bn_act(std::make_shared<Conv2d>(3, spec.stem_channels, 3, spec.stem_stride, false, gen),
                                spec.stem_channels, Activation::Kind::kHardswish));
  for (const V3BlockSpec& b : spec.blocks) {
    std::shared_ptr<MetaPooling> enhancer;
    if (b.expands()) enhancer = make_enhancer(fmt::format("features.{}.enhancer", features_->size()), b.expanded, gen);
    features_->append(std::make_shared<MobileNetV3Block>(b, enhancer, gen));
  }
  check_genotype_used();
  features_->append(conv_bn_act(std::make_shared<Conv2d>(spec.blocks.back().out, spec.last_conv_channels, 1, 1, false, gen),
                                spec.last_conv_channels, Activation::Kind::kHardswish));
  classifier_ = register_module("classifier", std::make_shared<Sequential>());
  classifier_->append(std::make_shared<Linear>(spec.last_conv_channels, spec.last_channels, gen));
  classifier_->append(std::make_shared<Activation>(Activation::Kind::kHardswish));
  classifier_->append(make_dropout());
  classifier_->append(std::make_shared<Linear>(spec.last_channels, config.num_classes, gen));
}

}  // namespace pmpl
