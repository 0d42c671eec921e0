// MobileNetV2 exactly as torchvision builds it (channel rounding, last-channel rule, dropout
// before the classifier, initialisation, state_dict names), plus:
//  - small_input: stem stride 1 and the first stride-2 stage at stride 1, for 28-64 px images;
//  - meta_pooling: a Meta-Pooling enhancer ("features.N.enhancer") in every block with
//    expansion > 1, after the depthwise conv + BN + ReLU6, searching or fixed from a genotype.
#pragma once

#include <optional>
#include <vector>

#include "layers/meta_pooling.h"
#include "models/genotype.h"

namespace pmpl {

struct MobileNetV2Config {
  double width = 1.0;
  int64_t num_classes = 1000;
  bool small_input = false;
  double dropout = 0.2;
  bool meta_pooling = false;
  // With meta_pooling: every enhancer fixed as listed (names must match the network's).
  std::optional<Genotype> genotype;
  uint64_t seed = 0;
};

// torchvision's _make_divisible: round to a multiple of 8, never more than 10% down.
int64_t make_divisible(double value, int64_t divisor = 8);

// The architecture as data, shared by the trainable network and the deployment runtime: the stem
// width, each inverted-residual block (features.1 .. features.17) and the last conv's width.
struct BlockSpec {
  int64_t index;  // its position in `features`
  int64_t in, out, hidden;
  int stride, expand;
  bool residual() const { return stride == 1 && in == out; }
};
struct ArchitectureSpec {
  int64_t stem_channels;
  int stem_stride;
  std::vector<BlockSpec> blocks;
  int64_t last_channels;
};
ArchitectureSpec mobilenetv2_spec(double width, bool small_input);

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int stride, int expand,
                   std::shared_ptr<MetaPooling> enhancer, Generator& gen);
  std::string type_name() const override { return "InvertedResidual"; }
  MetaPooling* enhancer() const { return enhancer_.get(); }
  // Stochastic depth in training: each sample's residual branch is dropped with probability p
  // (and the kept ones scaled by 1 / (1 - p), timm's drop_path), the draws taken from `gen`.
  void set_drop_path(double p, Generator* gen) {
    drop_path_ = p;
    drop_path_gen_ = gen;
  }

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  std::shared_ptr<Sequential> conv_;
  std::shared_ptr<MetaPooling> enhancer_;
  size_t depthwise_index_;  // the enhancer runs right after this child of conv_
  bool residual_;
  double drop_path_ = 0.0;
  Generator* drop_path_gen_ = nullptr;
};

class MobileNetV2 : public Module {
 public:
  explicit MobileNetV2(const MobileNetV2Config& config);
  std::string type_name() const override { return "MobileNetV2"; }
  const MobileNetV2Config& config() const { return config_; }
  // The enhancers in network order with their names ("features.2.enhancer"); empty without
  // meta_pooling.
  std::vector<std::pair<std::string, MetaPooling*>> enhancers() const;
  Genotype genotype() const;
  // The classifier dropout's generator (its state is part of a checkpoint).
  Generator& dropout_generator() { return dropout_->generator(); }
  // --drop-path: stochastic depth on the residual blocks, at rate * i / 17 in block features.i
  // (timm's linear rule over block indices, from 0 at the first); the draws come from the
  // dropout's generator, so a checkpoint's state covers them. 0 turns it off.
  void set_drop_path(double rate);
  // Mixed precision: the activations' dtype inside the network (bf16 or f16 on a GPU; f32, the
  // default, leaves the input's dtype alone). The input is cast to it, every weighted layer
  // computes in it from its f32 parameters, and the logits come out in f32.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }

 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  MobileNetV2Config config_;
  std::shared_ptr<Sequential> features_;
  std::shared_ptr<Sequential> classifier_;
  std::shared_ptr<Dropout> dropout_;
  DType compute_dtype_ = DType::kF32;
};

}  // namespace pmpl
