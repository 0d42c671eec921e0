#include "models/network.h"

#include <algorithm>

#include "engine/ops.h"
#include "layers/drop_path.h"

namespace pmpl {

int64_t make_divisible(double value, int64_t divisor) {
  const auto rounded = static_cast<int64_t>(value + static_cast<double>(divisor) / 2.0) / divisor * divisor;
  int64_t v = std::max(divisor, rounded);
  if (static_cast<double>(v) < 0.9 * value) v += divisor;
  return v;
}

Tensor ResidualBlock::add_residual(const Tensor& x, const Tensor& branch) {
  if (!residual_) return branch;
  if (training() && drop_path_ > 0.0) return ops::add(x, drop_path(branch, drop_path_, *drop_path_gen_));
  return ops::add(x, branch);
}

EnhancedBlock::EnhancedBlock(bool residual, const std::string& layers_name)
    : ResidualBlock(residual), layers_name_(layers_name) {
  layers_ = register_module(layers_name, std::make_shared<Sequential>());
}

void EnhancedBlock::set_enhancer(std::shared_ptr<MetaPooling> enhancer) {
  if (!enhancer) return;
  enhancer_ = register_module("enhancer", std::move(enhancer));
  const auto& children = layers_->children();
  if (depthwise_index_ + 1 < children.size()) {
    // A removal folds the enhancer's scale into the convolution right after it (MobileNetV2's
    // projection); where another layer comes first (squeeze-and-excitation) nothing can absorb it.
    if (auto* conv = dynamic_cast<Conv2d*>(children[depthwise_index_ + 1].second.get())) enhancer_->set_next_conv(conv);
  }
}

Tensor EnhancedBlock::forward_impl(const Tensor& x) {
  Tensor y = x;
  const auto& children = layers_->children();
  for (size_t i = 0; i < children.size(); ++i) {
    y = children[i].second->forward(y);
    if (i == depthwise_index_ && enhancer_) y = enhancer_->forward(y);
  }
  return add_residual(x, y);
}

int EnhancedBlock::trace(Trace& trace, int x, const std::string& path) const {
  int y = x;
  const auto& children = layers_->children();
  for (size_t i = 0; i < children.size(); ++i) {
    y = children[i].second->trace(trace, y, join_path(path, layers_name_ + "." + children[i].first));
    if (i == depthwise_index_ && enhancer_) y = enhancer_->trace(trace, y, join_path(path, "enhancer"));
  }
  return residual() ? trace.add({"add", path, {x, y}}) : y;
}

Network::Network(std::string name, const ModelConfig& config) : name_(std::move(name)), config_(config) {
  PMPL_CHECK(config.width > 0.0 && config.width <= 4.0, "--width {} is outside (0, 4]", config.width);
  PMPL_CHECK(config.num_classes > 0, "--num-classes must be positive, got {}", config.num_classes);
  PMPL_CHECK(config.dropout >= 0.0 && config.dropout < 1.0, "--dropout {} is outside [0, 1)",
             config.dropout);
  PMPL_CHECK(!config.genotype || config.meta_pooling,
             "a genotype fixes Meta-Pooling enhancers: use a model with Meta-Pooling ({}_mp)", name_);
  PMPL_CHECK(!config.gated || config.meta_pooling,
             "--gate weighs searching enhancers against their removal: use a model with Meta-Pooling ({}_mp)", name_);
  PMPL_CHECK(!config.gated || !config.genotype,
             "--gate is for a search, and --genotype fixes every enhancer: drop one of them");
  PMPL_CHECK(!config.genotype || config.genotype->complete(),
             "the genotype leaves some enhancers open: a fixed model needs every one fixed");
}

std::shared_ptr<Dropout> Network::make_dropout() {
  dropout_ = std::make_shared<Dropout>(config_.dropout, config_.seed ^ 0x9E3779B97F4A7C15ull);
  return dropout_;
}

std::shared_ptr<MetaPooling> Network::make_enhancer(const std::string& name, int64_t channels, Generator& gen) {
  if (!config_.meta_pooling) return nullptr;
  if (!config_.genotype) return std::make_shared<MetaPooling>(channels, gen, config_.gated);
  const auto& entries = config_.genotype->enhancers;
  PMPL_CHECK(genotype_index_ < entries.size(), "the genotype lists {} enhancers; this network has more",
             entries.size());
  const Genotype::Entry& entry = entries[genotype_index_++];
  PMPL_CHECK(entry.name == name, "the genotype's enhancer #{} is {}, the network's is {}", genotype_index_,
             entry.name, name);
  if (entry.removed) return MetaPooling::make_removed();
  return std::make_shared<MetaPooling>(channels, entry.ops, gen);
}

void Network::check_genotype_used() const {
  if (!config_.genotype) return;
  PMPL_CHECK(genotype_index_ == config_.genotype->enhancers.size(), "the genotype lists {} enhancers; this network has {}",
             config_.genotype->enhancers.size(), genotype_index_);
}

Tensor Network::forward_impl(const Tensor& x) {
  PMPL_CHECK(x.rank() == 4 && x.dim(3) == 3, "{} expects images [N, H, W, 3], got {}", name_, x.shape().str());
  if (compute_dtype_ == DType::kF32) return forward_network(x);
  return ops::cast(forward_network(ops::cast(x, compute_dtype_)), DType::kF32);
}

void Network::set_compute_dtype(DType dtype) {
  PMPL_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
             "mixed precision computes in bf16 or f16 (or f32 without it), not {}", dtype_name(dtype));
  compute_dtype_ = dtype;
}

std::vector<std::pair<std::string, MetaPooling*>> Network::enhancers() const {
  std::vector<std::pair<std::string, MetaPooling*>> out;
  for (const auto& [name, module] : modules()) {
    // modules() lists this network too; it is no enhancer.
    if (auto* e = dynamic_cast<MetaPooling*>(const_cast<Module*>(module))) out.emplace_back(name, e);
  }
  return out;
}

Genotype Network::genotype() const {
  Genotype g;
  for (const auto& [name, enhancer] : enhancers()) {
    g.enhancers.push_back({name, enhancer->fixed_ops(), enhancer->removed()});
  }
  return g;
}

void Network::set_bn_momentum(double momentum) {
  PMPL_CHECK(momentum > 0.0 && momentum <= 1.0, "--bn-momentum {} is outside (0, 1]", momentum);
  for (const auto& [name, module] : modules()) {
    if (auto* bn = dynamic_cast<BatchNorm*>(const_cast<Module*>(module))) bn->set_momentum(momentum);
  }
}

void Network::set_drop_path(double rate) {
  PMPL_CHECK(rate >= 0.0 && rate < 1.0, "--drop-path {} is outside [0, 1)", rate);
  std::vector<ResidualBlock*> blocks;
  for (const auto& [name, module] : modules()) {
    if (auto* b = dynamic_cast<ResidualBlock*>(const_cast<Module*>(module))) blocks.push_back(b);
  }
  PMPL_CHECK(rate == 0.0 || !blocks.empty(), "--drop-path: {} has no residual blocks to drop", name_);
  const auto count = static_cast<double>(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i]->set_drop_path(rate * static_cast<double>(i) / count, &dropout_generator());
  }
}

Tensor PooledNetwork::forward_network(const Tensor& x) {
  return classifier_->forward(ops::global_avg_pool(features_->forward(x)));
}

int PooledNetwork::trace(Trace& trace, int x, const std::string& path) const {
  const int features = features_->trace(trace, x, join_path(path, "features"));
  const int pooled = trace.add({"global_avg_pool", join_path(path, "avgpool"), {features}, {}, {{"keep_dims", false}}});
  return classifier_->trace(trace, pooled, join_path(path, "classifier"));
}

}  // namespace pmpl
