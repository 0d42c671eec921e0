#include "models/shufflenetv2.h"

#include <array>

#include "engine/ops.h"

namespace pmpl {
namespace {

constexpr auto kTorch = ConvInit::kTorchDefault;
// branch2's enhancer comes after its depthwise conv (index 3) and that conv's BN (4).
constexpr size_t kEnhancerAfter = 4;

// BN then ReLU (fused into the BN) appended to `seq`, as torchvision's flat Sequentials hold them.
void append_bn_relu(Sequential& seq, int64_t channels) {
  seq.append(std::make_shared<BatchNorm>(channels, ops::BnActivation::kReLU));
  seq.append(std::make_shared<Activation>(Activation::Kind::kReLU, /*fused=*/true));
}

}  // namespace

ShuffleUnit::ShuffleUnit(int64_t in, int64_t out, int stride, std::shared_ptr<MetaPooling> enhancer, Generator& gen)
    : half_(out / 2) {
  const int64_t half = half_;
  PMPL_CHECK(stride == 2 || in == 2 * half, "a stride-1 ShuffleNetV2 unit needs in == out, got {} and {}", in, out);
  branch1_ = register_module("branch1", std::make_shared<Sequential>());
  if (stride == 2) {
    branch1_->append(std::make_shared<DepthwiseConv2d>(in, 3, 2, gen, kTorch));
    branch1_->append(std::make_shared<BatchNorm>(in));
    branch1_->append(std::make_shared<Conv2d>(in, half, 1, 1, false, gen, kTorch));
    append_bn_relu(*branch1_, half);
  }
  branch2_ = register_module("branch2", std::make_shared<Sequential>());
  branch2_->append(std::make_shared<Conv2d>(stride == 2 ? in : half, half, 1, 1, false, gen, kTorch));
  append_bn_relu(*branch2_, half);
  branch2_->append(std::make_shared<DepthwiseConv2d>(half, 3, stride, gen, kTorch));
  branch2_->append(std::make_shared<BatchNorm>(half));
  branch2_->append(std::make_shared<Conv2d>(half, half, 1, 1, false, gen, kTorch));
  append_bn_relu(*branch2_, half);
  if (enhancer) enhancer_ = register_module("enhancer", std::move(enhancer));
}

Tensor ShuffleUnit::forward_impl(const Tensor& x) {
  Tensor kept, y;
  if (branch1_->size() == 0) {
    const int64_t half = x.dim(3) / 2;
    const Tensors parts = ops::split(x, {half, half}, 3);
    kept = parts[0];
    y = parts[1];
  } else {
    kept = branch1_->forward(x);
    y = x;
  }
  const auto& layers = branch2_->children();
  for (size_t i = 0; i < layers.size(); ++i) {
    y = layers[i].second->forward(y);
    if (i == kEnhancerAfter && enhancer_) y = enhancer_->forward(y);
  }
  return ops::channel_shuffle(ops::concat({kept, y}, 3), 2);
}

int ShuffleUnit::trace(Trace& trace, int x, const std::string& path) const {
  int kept = 0, y = x;
  if (branch1_->size() == 0) {
    kept = trace.add({"slice", path, {x}, {}, {{"begin", 0}, {"end", half_}}});
    y = trace.add({"slice", path, {x}, {}, {{"begin", half_}, {"end", 2 * half_}}});
  } else {
    kept = branch1_->trace(trace, x, join_path(path, "branch1"));
  }
  const auto& layers = branch2_->children();
  for (size_t i = 0; i < layers.size(); ++i) {
    y = layers[i].second->trace(trace, y, join_path(path, "branch2." + layers[i].first));
    if (i == kEnhancerAfter && enhancer_) y = enhancer_->trace(trace, y, join_path(path, "enhancer"));
  }
  const int joined = trace.add({"concat", path, {kept, y}});
  return trace.add({"channel_shuffle", path, {joined}, {}, {{"groups", 2}}});
}

ShuffleNetV2::ShuffleNetV2(std::string name, bool half, const ModelConfig& config)
    : Network(std::move(name), config), pool_stride_(config.small_input ? 1 : 2) {
  PMPL_CHECK(config.width == 1.0, "{}: the width is in the model's name (shufflenetv2_x0_5 or _x1_0), so --width "
                                  "must be 1, got {}", this->name(), config.width);
  const std::array<int64_t, 5> widths =
      half ? std::array<int64_t, 5>{24, 48, 96, 192, 1024} : std::array<int64_t, 5>{24, 116, 232, 464, 1024};
  constexpr std::array<int, 3> kRepeats = {4, 8, 4};
  Generator gen(config.seed);
  conv1_ = register_module("conv1", std::make_shared<Sequential>());
  conv1_->append(std::make_shared<Conv2d>(3, widths[0], 3, config.small_input ? 1 : 2, false, gen, kTorch));
  append_bn_relu(*conv1_, widths[0]);
  int64_t channels = widths[0];
  for (int s = 0; s < 3; ++s) {
    stages_[s] = register_module(fmt::format("stage{}", s + 2), std::make_shared<Sequential>());
    for (int i = 0; i < kRepeats[s]; ++i) {
      const int64_t out = widths[s + 1];
      auto enhancer = make_enhancer(fmt::format("stage{}.{}.enhancer", s + 2, i), out / 2, gen);
      stages_[s]->append(std::make_shared<ShuffleUnit>(channels, out, i == 0 ? 2 : 1, enhancer, gen));
      channels = out;
    }
  }
  check_genotype_used();
  conv5_ = register_module("conv5", std::make_shared<Sequential>());
  conv5_->append(std::make_shared<Conv2d>(channels, widths[4], 1, 1, false, gen, kTorch));
  append_bn_relu(*conv5_, widths[4]);
  // Registered so that eval() reaches it; it has no parameters, so the names stay torchvision's.
  dropout_ = register_module("dropout", make_dropout());
  fc_ = register_module("fc", std::make_shared<Linear>(widths[4], config.num_classes, gen, Linear::Init::kTorchDefault));
}

Tensor ShuffleNetV2::forward_network(const Tensor& x) {
  Tensor y = ops::max_pool2d(conv1_->forward(x), 3, pool_stride_, 1);
  for (const auto& stage : stages_) y = stage->forward(y);
  y = ops::global_avg_pool(conv5_->forward(y));
  return fc_->forward(dropout_->forward(y));
}

int ShuffleNetV2::trace(Trace& trace, int x, const std::string& path) const {
  int y = conv1_->trace(trace, x, join_path(path, "conv1"));
  y = trace.add({"max_pool", join_path(path, "maxpool"), {y}, {}, {{"kernel", 3}, {"stride", pool_stride_}, {"pad", 1}}});
  for (int s = 0; s < 3; ++s) y = stages_[s]->trace(trace, y, join_path(path, fmt::format("stage{}", s + 2)));
  y = conv5_->trace(trace, y, join_path(path, "conv5"));
  y = trace.add({"global_avg_pool", join_path(path, "avgpool"), {y}, {}, {{"keep_dims", false}}});
  return fc_->trace(trace, y, join_path(path, "fc"));
}

}  // namespace pmpl
