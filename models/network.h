// What every backbone offers the trainer, checkpoints, export and the CLI: its configuration, its
// Meta-Pooling enhancers (found by walking the modules, so a backbone only has to place them),
// the genotype they make, stochastic depth over its residual blocks, mixed precision, and the
// generator behind its dropout. A backbone (models/mobilenetv2.h, models/mobilenetv3.h) builds its
// layers in its constructor and implements forward_network.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "layers/layers.h"
#include "layers/meta_pooling.h"
#include "models/genotype.h"

namespace pmpl {

struct ModelConfig {
  double width = 1.0;
  int64_t num_classes = 1000;
  // 28-64 px images: the stem at stride 1 and the first stride-2 stage at stride 1.
  bool small_input = false;
  double dropout = 0.2;
  bool meta_pooling = false;
  // With meta_pooling: every enhancer fixed as listed (names must match the network's).
  std::optional<Genotype> genotype;
  // With meta_pooling and no genotype: every searching enhancer has a gate (--gate).
  bool gated = false;
  uint64_t seed = 0;
};

// torchvision's _make_divisible: round to a multiple of 8, never more than 10% down.
int64_t make_divisible(double value, int64_t divisor = 8);

// A block whose output is its input plus a branch (when the shapes allow), with stochastic depth
// on the branch in training: each sample's branch is dropped with probability p and the kept ones
// scaled by 1 / (1 - p) (timm's drop_path), the draws taken from `gen`.
class ResidualBlock : public Module {
 public:
  bool residual() const { return residual_; }
  void set_drop_path(double p, Generator* gen) {
    drop_path_ = p;
    drop_path_gen_ = gen;
  }

 protected:
  explicit ResidualBlock(bool residual) : residual_(residual) {}
  // x + branch for a residual block, the branch alone otherwise.
  Tensor add_residual(const Tensor& x, const Tensor& branch);

 private:
  bool residual_;
  double drop_path_ = 0.0;
  Generator* drop_path_gen_ = nullptr;
};

// A residual block of layers run in sequence (a Sequential registered as `layers_name`: "conv" in
// MobileNetV2, "block" in MobileNetV3), with the Meta-Pooling enhancer, if any, right after the
// depthwise stage. The backbone's constructor appends the layers, calling mark_depthwise() right
// after the depthwise stage, and then set_enhancer().
class EnhancedBlock : public ResidualBlock {
 protected:
  EnhancedBlock(bool residual, const std::string& layers_name);
  Sequential& layers() { return *layers_; }
  int trace(Trace& trace, int x, const std::string& path) const override;
  void mark_depthwise() { depthwise_index_ = layers_->size() - 1; }
  // Registered as "enhancer", after the layers (torchvision's names and order come first); a
  // convolution right after the depthwise stage becomes its next_conv.
  void set_enhancer(std::shared_ptr<MetaPooling> enhancer);
  Tensor forward_impl(const Tensor& x) override;

 private:
  std::string layers_name_;
  std::shared_ptr<Sequential> layers_;
  std::shared_ptr<MetaPooling> enhancer_;
  size_t depthwise_index_ = 0;
};

class Network : public Module {
 public:
  const ModelConfig& config() const { return config_; }
  // The registry's name ("mobilenetv2", "mobilenetv3_small_mp", ...).
  const std::string& name() const { return name_; }
  // The enhancers in network order with their names ("features.2.enhancer"); empty without
  // meta_pooling.
  std::vector<std::pair<std::string, MetaPooling*>> enhancers() const;
  Genotype genotype() const;
  // The classifier dropout's generator (its state is part of a checkpoint).
  Generator& dropout_generator() { return dropout_->generator(); }
  // --drop-path: stochastic depth on the residual blocks, at rate * i / B in the i-th of the
  // network's B blocks (timm's linear rule over block indices, from 0 at the first; blocks without
  // a residual count but never drop). The draws come from the dropout's generator, so a
  // checkpoint's state covers them. 0 turns it off.
  void set_drop_path(double rate);
  // --bn-momentum: every batchnorm's running-statistics momentum (PyTorch's convention: the new
  // batch's weight), replacing the backbone's own (0.1 in MobileNetV2, 0.01 in MobileNetV3, whose
  // statistics then lag a short run's weights by ~100 steps).
  void set_bn_momentum(double momentum);
  // Mixed precision: the activations' dtype inside the network (bf16 or f16 on a GPU; f32, the
  // default, leaves the input's dtype alone). The input is cast to it, every weighted layer
  // computes in it from its f32 parameters, and the logits come out in f32.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }

 protected:
  // Checks the configuration's common fields.
  Network(std::string name, const ModelConfig& config);
  // Images [N, H, W, 3] in the compute dtype -> logits [N, classes].
  virtual Tensor forward_network(const Tensor& x) = 0;
  Tensor forward_impl(const Tensor& x) final;

  // The enhancer a backbone places at `name` (nullptr without meta_pooling): searching, or fixed
  // as the genotype's next entry, which must carry this name. Backbones call it in network order
  // and finish with check_genotype_used().
  std::shared_ptr<MetaPooling> make_enhancer(const std::string& name, int64_t channels, Generator& gen);
  void check_genotype_used() const;
  // The classifier's dropout, seeded from the model's seed; the backbone registers it.
  std::shared_ptr<Dropout> make_dropout();

 private:
  std::string name_;
  ModelConfig config_;
  std::shared_ptr<Dropout> dropout_;
  size_t genotype_index_ = 0;
  DType compute_dtype_ = DType::kF32;
};

// The shape MobileNetV2, MobileNetV3 and EfficientNet share: `features` (stem, blocks, last conv),
// global average pooling, then `classifier`. The backbone registers both in its constructor.
class PooledNetwork : public Network {
 public:
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  using Network::Network;
  Tensor forward_network(const Tensor& x) override;

  std::shared_ptr<Sequential> features_;
  std::shared_ptr<Sequential> classifier_;
};

}  // namespace pmpl
