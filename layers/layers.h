// The plain layers MobileNetV2 is made of. Weight layouts (pmpl's, NHWC-friendly):
// Conv2d [Cout, kh, kw, Cin], DepthwiseConv2d [C, k, k], Linear [out, in]; names as PyTorch's.
#pragma once

#include "engine/ops.h"
#include "core/rng.h"
#include "layers/module.h"

namespace pmpl {

// How a conv's weights start: torchvision's Kaiming normal with fan_out (MobileNets, EfficientNet;
// biases zero), or PyTorch's default, U(-r, r) with r = 1 / sqrt(fan_in) for weight and bias
// (ShuffleNetV2, which torchvision leaves at the default).
enum class ConvInit : uint8_t { kKaimingFanOut, kTorchDefault };

// Dense convolution with "same"-style padding k / 2; a 1x1 stride-1 conv runs as one GEMM.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, bool bias,
         Generator& gen, ConvInit init = ConvInit::kKaimingFanOut);
  std::string type_name() const override;
  int64_t macs(const Shape& input, const Shape& output) const override;
  const Tensor& weight() const { return weight_; }

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  int kernel_, stride_;
  Tensor weight_, bias_;
};

class DepthwiseConv2d : public Module {
 public:
  DepthwiseConv2d(int64_t channels, int kernel, int stride, Generator& gen,
                  ConvInit init = ConvInit::kKaimingFanOut);
  std::string type_name() const override;
  int64_t macs(const Shape& input, const Shape& output) const override;

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  int kernel_, stride_;
  Tensor weight_;
};

// PyTorch's BatchNorm2d over the last (channel) dimension: momentum 0.1, eps 1e-5, and the
// num_batches_tracked counter kept so state_dicts round-trip. With `fused` it also applies the
// activation that follows it (ops::BnActivation: a ReLU6 module after it is then built `fused`;
// the enhancer's hardswish is no module).
class BatchNorm : public Module {
 public:
  // weight (gamma) and bias (beta) start at `weight_init` and `bias_init`. eps and momentum as
  // PyTorch's (MobileNetV3 uses 1e-3 and 0.01).
  explicit BatchNorm(int64_t channels, ops::BnActivation fused = ops::BnActivation::kNone, double weight_init = 1.0,
                     double bias_init = 0.0, double eps = 1e-5, double momentum = 0.1);
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  // gamma / sqrt(running variance + eps) per channel: the scale it applies in evaluation mode.
  std::vector<double> evaluation_scale() const;
  void set_momentum(double momentum) { momentum_ = momentum; }
  std::string type_name() const override { return "BatchNorm"; }
  // Training statistics over every data-parallel process (--sync-bn); null: this process's own.
  void set_sync(std::shared_ptr<const ops::SumReducer> sync) { sync_ = std::move(sync); }
  // Re-estimates the running statistics after the network before this layer changed (a fixed
  // Meta-Pooling enhancer): from begin_recalibration() to end_recalibration() every batch seen in
  // training mode weighs equally (PyTorch's momentum=None) and the earlier statistics are
  // forgotten; those batches are not counted in num_batches_tracked.
  void begin_recalibration() { recalibrated_ = 0; }
  void end_recalibration() { recalibrated_ = -1; }
  // In evaluation mode too, normalise with each batch's own statistics and leave the running ones
  // alone: how a search network is scored while its running statistics lag its weights.
  void set_batch_statistics(bool on) { batch_statistics_ = on; }

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  Tensor weight_, bias_, running_mean_, running_var_, batches_tracked_;
  ops::BnActivation fused_;
  double eps_, momentum_;
  std::shared_ptr<const ops::SumReducer> sync_;
  int64_t recalibrated_ = -1;  // batches averaged since begin_recalibration(); -1: not recalibrating
  bool batch_statistics_ = false;
};

class Linear : public Module {
 public:
  // Weights N(0, 0.01) (MobileNetV2 and V3); EfficientNet's U(-r, r) with r = 1 / sqrt(out);
  // PyTorch's default (ShuffleNetV2's) U(-r, r) with r = 1 / sqrt(in), for the bias too.
  enum class Init : uint8_t { kNormal, kUniformFanOut, kTorchDefault };
  Linear(int64_t in_features, int64_t out_features, Generator& gen, Init init = Init::kNormal);
  std::string type_name() const override { return "Linear"; }
  int64_t macs(const Shape& input, const Shape& output) const override;

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  Tensor weight_, bias_;
};

// `fused`: the preceding BatchNorm applies it, so this module passes its input through (it
// stays in the network for PyTorch's module indices and the summary).
class ReLU6 : public Module {
 public:
  explicit ReLU6(bool fused = false) : fused_(fused) {}
  std::string type_name() const override { return fused_ ? "ReLU6 (fused)" : "ReLU6"; }

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  bool fused_;
};

// The name of a fused batchnorm activation in a trace ("none", "relu6", ...).
const char* bn_activation_name(ops::BnActivation act);

// ReLU, hardswish or SiLU as a module (the activation child of torchvision's
// Conv2dNormActivation, or a classifier's). `fused`: as ReLU6's.
class Activation : public Module {
 public:
  enum class Kind : uint8_t { kReLU, kHardswish, kSiLU };
  explicit Activation(Kind kind, bool fused = false) : kind_(kind), fused_(fused) {}
  std::string type_name() const override;
  // The batchnorm activation that does this one's work when fused.
  ops::BnActivation bn_activation() const;

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  Kind kind_;
  bool fused_;
};

// Its own generator (seeded from the model's), so that masks are reproducible and resumable.
class Dropout : public Module {
 public:
  Dropout(double p, uint64_t seed);
  std::string type_name() const override { return "Dropout"; }
  Generator& generator() { return gen_; }

  int trace(Trace& trace, int x, const std::string& path) const override;
 protected:
  Tensor forward_impl(const Tensor& x) override;

 private:
  double p_;
  Generator gen_;
};

}  // namespace pmpl
