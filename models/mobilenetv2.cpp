#include "models/mobilenetv2.h"

#include <array>
#include <cmath>

#include "engine/ops.h"
#include "layers/drop_path.h"

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

int64_t make_divisible(double value, int64_t divisor) {
  const auto rounded = static_cast<int64_t>(value + static_cast<double>(divisor) / 2.0) / divisor * divisor;
  int64_t v = std::max(divisor, rounded);
  if (static_cast<double>(v) < 0.9 * value) v += divisor;
  return v;
}

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
    : residual_(stride == 1 && in == out) {
  const int64_t hidden = in * expand;
  conv_ = register_module("conv", std::make_shared<Sequential>());
  if (expand != 1) {
    conv_->append(conv_bn_relu6(std::make_shared<Conv2d>(in, hidden, 1, 1, false, gen), hidden));
  }
  depthwise_index_ = conv_->size();
  conv_->append(conv_bn_relu6(std::make_shared<DepthwiseConv2d>(hidden, 3, stride, gen), hidden));
  conv_->append(std::make_shared<Conv2d>(hidden, out, 1, 1, false, gen));
  conv_->append(std::make_shared<BatchNorm>(out));
  if (enhancer) enhancer_ = register_module("enhancer", std::move(enhancer));
}

Tensor InvertedResidual::forward_impl(const Tensor& x) {
  Tensor y = x;
  const auto& layers = conv_->children();
  for (size_t i = 0; i < layers.size(); ++i) {
    y = layers[i].second->forward(y);
    if (i == depthwise_index_ && enhancer_) y = enhancer_->forward(y);
  }
  if (!residual_) return y;
  if (training() && drop_path_ > 0.0) y = drop_path(y, drop_path_, *drop_path_gen_);
  return ops::add(x, y);
}

void MobileNetV2::set_drop_path(double rate) {
  PMPL_CHECK(rate >= 0.0 && rate < 1.0, "--drop-path {} is outside [0, 1)", rate);
  const auto& blocks = features_->children();
  const auto count = static_cast<double>(blocks.size() - 2);  // the inverted residuals, between stem and head
  for (size_t i = 1; i + 1 < blocks.size(); ++i) {
    auto* block = dynamic_cast<InvertedResidual*>(blocks[i].second.get());
    PMPL_ASSERT(block != nullptr, "features.{} is not an inverted residual", i);
    block->set_drop_path(rate * static_cast<double>(i - 1) / count, &dropout_generator());
  }
}

MobileNetV2::MobileNetV2(const MobileNetV2Config& config) : config_(config) {
  PMPL_CHECK(config.width > 0.0 && config.width <= 4.0, "--width {} is outside (0, 4]", config.width);
  PMPL_CHECK(config.num_classes > 0, "--num-classes must be positive, got {}", config.num_classes);
  PMPL_CHECK(config.dropout >= 0.0 && config.dropout < 1.0, "--dropout {} is outside [0, 1)",
             config.dropout);
  PMPL_CHECK(!config.genotype || config.meta_pooling,
             "a genotype fixes Meta-Pooling enhancers: use the model mobilenetv2_mp");
  PMPL_CHECK(!config.genotype || config.genotype->complete(),
             "the genotype leaves some enhancers open: a fixed model needs every one fixed");
  Generator gen(config.seed);
  const ArchitectureSpec spec = mobilenetv2_spec(config.width, config.small_input);
  features_ = register_module("features", std::make_shared<Sequential>());
  features_->append(conv_bn_relu6(std::make_shared<Conv2d>(3, spec.stem_channels, 3, spec.stem_stride, false, gen),
                                  spec.stem_channels));
  size_t genotype_index = 0;
  for (const BlockSpec& b : spec.blocks) {
    std::shared_ptr<MetaPooling> enhancer;
    if (config.meta_pooling && b.expand != 1) {
      const std::string name = fmt::format("features.{}.enhancer", b.index);
      if (config.genotype) {
        PMPL_CHECK(genotype_index < config.genotype->enhancers.size(),
                   "the genotype lists {} enhancers; this network has more", config.genotype->enhancers.size());
        const Genotype::Entry& entry = config.genotype->enhancers[genotype_index++];
        PMPL_CHECK(entry.name == name, "the genotype's enhancer #{} is {}, the network's is {}", genotype_index,
                   entry.name, name);
        enhancer = std::make_shared<MetaPooling>(b.hidden, entry.ops, gen);
      } else {
        enhancer = std::make_shared<MetaPooling>(b.hidden, gen);
      }
    }
    features_->append(std::make_shared<InvertedResidual>(b.in, b.out, b.stride, b.expand, enhancer, gen));
  }
  PMPL_CHECK(!config.genotype || genotype_index == config.genotype->enhancers.size(),
             "the genotype lists {} enhancers; this network has {}",
             config.genotype ? config.genotype->enhancers.size() : 0, genotype_index);
  const int64_t channels = spec.blocks.back().out, last_channels = spec.last_channels;
  features_->append(conv_bn_relu6(std::make_shared<Conv2d>(channels, last_channels, 1, 1, false, gen),
                                  last_channels));
  classifier_ = register_module("classifier", std::make_shared<Sequential>());
  dropout_ = std::make_shared<Dropout>(config.dropout, config.seed ^ 0x9E3779B97F4A7C15ull);
  classifier_->append(dropout_);
  classifier_->append(std::make_shared<Linear>(last_channels, config.num_classes, gen));
}

Tensor MobileNetV2::forward_impl(const Tensor& x) {
  PMPL_CHECK(x.rank() == 4 && x.dim(3) == 3, "MobileNetV2 expects images [N, H, W, 3], got {}",
             x.shape().str());
  if (compute_dtype_ == DType::kF32) return classifier_->forward(ops::global_avg_pool(features_->forward(x)));
  const Tensor logits = classifier_->forward(ops::global_avg_pool(features_->forward(ops::cast(x, compute_dtype_))));
  return ops::cast(logits, DType::kF32);
}

void MobileNetV2::set_compute_dtype(DType dtype) {
  PMPL_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
             "mixed precision computes in bf16 or f16 (or f32 without it), not {}", dtype_name(dtype));
  compute_dtype_ = dtype;
}

std::vector<std::pair<std::string, MetaPooling*>> MobileNetV2::enhancers() const {
  std::vector<std::pair<std::string, MetaPooling*>> out;
  const auto& blocks = features_->children();
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto* block = dynamic_cast<InvertedResidual*>(blocks[i].second.get());
    if (block != nullptr && block->enhancer() != nullptr) {
      out.emplace_back(fmt::format("features.{}.enhancer", i), block->enhancer());
    }
  }
  return out;
}

Genotype MobileNetV2::genotype() const {
  Genotype g;
  for (const auto& [name, enhancer] : enhancers()) g.enhancers.push_back({name, enhancer->fixed_ops()});
  return g;
}

}  // namespace pmpl
