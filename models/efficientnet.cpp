#include "models/efficientnet.h"

#include <algorithm>
#include <array>

#include "engine/ops.h"
#include "layers/squeeze_excitation.h"
#include "models/conv_norm_act.h"

namespace pmpl {
namespace {

// torchvision's MBConvConfig rows for B0: (expand, kernel, stride, in, out, layers).
struct Stage {
  int expand, kernel, stride;
  int64_t in, out;
  int layers;
};
constexpr std::array<Stage, 7> kB0 = {{{1, 3, 1, 32, 16, 1},
                                       {6, 3, 2, 16, 24, 2},
                                       {6, 5, 2, 24, 40, 2},
                                       {6, 3, 2, 40, 80, 3},
                                       {6, 5, 1, 80, 112, 3},
                                       {6, 5, 2, 112, 192, 4},
                                       {6, 3, 1, 192, 320, 1}}};

constexpr auto kSiLU = Activation::Kind::kSiLU;

}  // namespace

EfficientNetSpec efficientnet_b0_spec(double width, bool small_input) {
  const auto adjust = [width](int64_t c) { return make_divisible(static_cast<double>(c) * width); };
  EfficientNetSpec spec;
  spec.stem_channels = adjust(kB0.front().in);
  spec.stem_stride = small_input ? 1 : 2;
  bool first_downsample = true;
  for (size_t s = 0; s < kB0.size(); ++s) {
    const Stage& st = kB0[s];
    for (int i = 0; i < st.layers; ++i) {
      const int64_t in = i == 0 ? adjust(st.in) : adjust(st.out);
      int stride = i == 0 ? st.stride : 1;
      if (stride == 2 && first_downsample) {
        first_downsample = false;
        if (small_input) stride = 1;  // the small-input variant keeps this block's resolution
      }
      spec.blocks.push_back({static_cast<int64_t>(s) + 1, i, in, make_divisible(static_cast<double>(in * st.expand)),
                             adjust(st.out), st.kernel, stride});
    }
  }
  spec.last_channels = 4 * spec.blocks.back().out;
  return spec;
}

MBConv::MBConv(const MBConvSpec& s, std::shared_ptr<MetaPooling> enhancer, Generator& gen)
    : EnhancedBlock(s.residual(), "block") {
  if (s.expands()) layers().append(conv_norm_act(std::make_shared<Conv2d>(s.in, s.expanded, 1, 1, false, gen), s.expanded, kSiLU));
  layers().append(conv_norm_act(std::make_shared<DepthwiseConv2d>(s.expanded, s.kernel, s.stride, gen), s.expanded, kSiLU));
  mark_depthwise();
  layers().append(std::make_shared<SqueezeExcitation>(s.expanded, std::max<int64_t>(1, s.in / 4),
                                                      SqueezeExcitation::Kind::kEfficientNet, gen));
  layers().append(conv_norm_act(std::make_shared<Conv2d>(s.expanded, s.out, 1, 1, false, gen), s.out, std::nullopt));
  set_enhancer(std::move(enhancer));
}

EfficientNet::EfficientNet(std::string name, const ModelConfig& config) : PooledNetwork(std::move(name), config) {
  Generator gen(config.seed);
  const EfficientNetSpec spec = efficientnet_b0_spec(config.width, config.small_input);
  features_ = register_module("features", std::make_shared<Sequential>());
  features_->append(conv_norm_act(std::make_shared<Conv2d>(3, spec.stem_channels, 3, spec.stem_stride, false, gen),
                                  spec.stem_channels, kSiLU));
  std::shared_ptr<Sequential> stage;
  for (const MBConvSpec& b : spec.blocks) {
    if (b.index == 0) {
      stage = std::make_shared<Sequential>();
      features_->append(stage);
    }
    std::shared_ptr<MetaPooling> enhancer;
    if (b.expands()) enhancer = make_enhancer(fmt::format("features.{}.{}.enhancer", b.stage, b.index), b.expanded, gen);
    stage->append(std::make_shared<MBConv>(b, enhancer, gen));
  }
  check_genotype_used();
  features_->append(conv_norm_act(std::make_shared<Conv2d>(spec.blocks.back().out, spec.last_channels, 1, 1, false, gen),
                                  spec.last_channels, kSiLU));
  classifier_ = register_module("classifier", std::make_shared<Sequential>());
  classifier_->append(make_dropout());
  classifier_->append(
      std::make_shared<Linear>(spec.last_channels, config.num_classes, gen, Linear::Init::kUniformFanOut));
}

}  // namespace pmpl
