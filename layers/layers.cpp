#include "layers/layers.h"

#include <cmath>

#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/init.h"

namespace pmpl {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, bool bias,
               Generator& gen, ConvInit init)
    : kernel_(kernel), stride_(stride) {
  const Shape shape{out_channels, kernel, kernel, in_channels};
  if (init == ConvInit::kKaimingFanOut) {
    weight_ = register_parameter("weight", init::kaiming_normal_fan_out(shape, out_channels * kernel * kernel, gen));
    if (bias) bias_ = register_parameter("bias", Tensor::zeros(Shape{out_channels}), ParamKind::kNoDecay);
    return;
  }
  const double r = 1.0 / std::sqrt(static_cast<double>(in_channels * kernel * kernel));
  weight_ = register_parameter("weight", Tensor::uniform(shape, -r, r, gen));
  if (bias) bias_ = register_parameter("bias", Tensor::uniform(Shape{out_channels}, -r, r, gen), ParamKind::kNoDecay);
}

std::string Conv2d::type_name() const {
  return fmt::format("Conv2d {}x{}/{}", kernel_, kernel_, stride_);
}

int64_t Conv2d::macs(const Shape& input, const Shape& output) const {
  const int64_t per_image = output.numel() / output[0];
  return per_image * kernel_ * kernel_ * weight_.dim(3);
}

// Weighted layers compute in their input's dtype: under mixed precision the f32 parameters are
// cast (a recorded op, so their gradients arrive in f32) to the activations' bf16 or f16.
Tensor Conv2d::forward_impl(const Tensor& x) {
  const Tensor w = ops::cast(weight_, x.dtype());
  Tensor y = (kernel_ == 1 && stride_ == 1) ? ops::pointwise_conv(x, w) : ops::conv2d(x, w, stride_, kernel_ / 2);
  return bias_.defined() ? ops::add(y, ops::cast(bias_, x.dtype())) : y;
}

int Conv2d::trace(Trace& trace, int x, const std::string& path) const {
  TraceNode node{"conv", path, {x}, {{"weight", weight_}}, {{"kernel", kernel_}, {"stride", stride_}}};
  if (bias_.defined()) node.tensors["bias"] = bias_;
  return trace.add(std::move(node));
}

DepthwiseConv2d::DepthwiseConv2d(int64_t channels, int kernel, int stride, Generator& gen, ConvInit init)
    : kernel_(kernel), stride_(stride) {
  const Shape shape{channels, kernel, kernel};
  // PyTorch's fan_out for a grouped conv weight [C, 1, k, k] is C * k * k, its fan_in k * k.
  const double r = 1.0 / static_cast<double>(kernel);
  weight_ = register_parameter("weight", init == ConvInit::kKaimingFanOut
                                             ? init::kaiming_normal_fan_out(shape, channels * kernel * kernel, gen)
                                             : Tensor::uniform(shape, -r, r, gen));
}

std::string DepthwiseConv2d::type_name() const {
  return fmt::format("DepthwiseConv {}x{}/{}", kernel_, kernel_, stride_);
}

int64_t DepthwiseConv2d::macs(const Shape& input, const Shape& output) const {
  return output.numel() / output[0] * kernel_ * kernel_;
}

Tensor DepthwiseConv2d::forward_impl(const Tensor& x) {
  return ops::depthwise_conv2d(x, ops::cast(weight_, x.dtype()), stride_, kernel_ / 2);
}

int DepthwiseConv2d::trace(Trace& trace, int x, const std::string& path) const {
  return trace.add({"depthwise", path, {x}, {{"weight", weight_}}, {{"kernel", kernel_}, {"stride", stride_}}});
}

BatchNorm::BatchNorm(int64_t channels, ops::BnActivation fused, double weight_init, double bias_init, double eps,
                     double momentum)
    : fused_(fused), eps_(eps), momentum_(momentum) {
  weight_ = register_parameter("weight", Tensor::full(Shape{channels}, weight_init), ParamKind::kNoDecay);
  bias_ = register_parameter("bias", Tensor::full(Shape{channels}, bias_init), ParamKind::kNoDecay);
  running_mean_ = register_buffer("running_mean", Tensor::zeros(Shape{channels}));
  running_var_ = register_buffer("running_var", Tensor::ones(Shape{channels}));
  batches_tracked_ = register_buffer("num_batches_tracked", Tensor::zeros(Shape{}, DType::kI64));
}

std::vector<double> BatchNorm::evaluation_scale() const {
  const std::vector<double> gamma = weight_.to(Device::cpu()).to(DType::kF64).to_vector<double>();
  const std::vector<double> var = running_var_.to(Device::cpu()).to(DType::kF64).to_vector<double>();
  std::vector<double> scale(gamma.size());
  for (size_t c = 0; c < gamma.size(); ++c) scale[c] = gamma[c] / std::sqrt(var[c] + eps_);
  return scale;
}

Tensor BatchNorm::forward_impl(const Tensor& x) {
  if (training() && recalibrated_ >= 0) {
    // The k-th batch since the start weighs 1/k: the statistics are the mean over the batches.
    ++recalibrated_;
    return ops::batch_norm(x, weight_, bias_, running_mean_, running_var_, true,
                           1.0 / static_cast<double>(recalibrated_), eps_, fused_, sync_.get());
  }
  if (!training() && batch_statistics_) {
    return ops::batch_norm(x, weight_, bias_, Tensor(), Tensor(), true, momentum_, eps_, fused_, sync_.get());
  }
  if (training()) ops::increment_(batches_tracked_, 1);
  return ops::batch_norm(x, weight_, bias_, running_mean_, running_var_, training(), momentum_, eps_,
                         fused_, sync_.get());
}

const char* bn_activation_name(ops::BnActivation act) {
  switch (act) {
    case ops::BnActivation::kNone: return "none";
    case ops::BnActivation::kReLU6: return "relu6";
    case ops::BnActivation::kHardswish: return "hardswish";
    case ops::BnActivation::kReLU: return "relu";
    case ops::BnActivation::kSiLU: break;
  }
  return "silu";
}

int BatchNorm::trace(Trace& trace, int x, const std::string& path) const {
  return trace.add({"batchnorm",
                    path,
                    {x},
                    {{"weight", weight_}, {"bias", bias_}, {"running_mean", running_mean_}, {"running_var", running_var_}},
                    {{"eps", eps_}, {"act", bn_activation_name(fused_)}}});
}

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, Init init) {
  const Shape shape{out_features, in_features};
  if (init == Init::kNormal) {
    weight_ = register_parameter("weight", init::normal(shape, 0.01, gen));
    bias_ = register_parameter("bias", Tensor::zeros(Shape{out_features}), ParamKind::kNoDecay);
    return;
  }
  const double r = 1.0 / std::sqrt(static_cast<double>(init == Init::kUniformFanOut ? out_features : in_features));
  weight_ = register_parameter("weight", Tensor::uniform(shape, -r, r, gen));
  bias_ = register_parameter("bias", init == Init::kTorchDefault ? Tensor::uniform(Shape{out_features}, -r, r, gen)
                                                                 : Tensor::zeros(Shape{out_features}),
                             ParamKind::kNoDecay);
}

int64_t Linear::macs(const Shape& input, const Shape& output) const {
  return weight_.dim(0) * weight_.dim(1);
}

Tensor Linear::forward_impl(const Tensor& x) {
  return ops::linear(x, ops::cast(weight_, x.dtype()), ops::cast(bias_, x.dtype()));
}

int Linear::trace(Trace& trace, int x, const std::string& path) const {
  return trace.add({"linear", path, {x}, {{"weight", weight_}, {"bias", bias_}}});
}

Tensor ReLU6::forward_impl(const Tensor& x) { return fused_ ? x : ops::relu6(x); }

int ReLU6::trace(Trace& trace, int x, const std::string& path) const {
  return fused_ ? x : trace.add({"act", path, {x}, {}, {{"act", "relu6"}}});
}

std::string Activation::type_name() const {
  const char* name = kind_ == Kind::kReLU ? "ReLU" : (kind_ == Kind::kHardswish ? "Hardswish" : "SiLU");
  return fused_ ? fmt::format("{} (fused)", name) : name;
}

ops::BnActivation Activation::bn_activation() const {
  switch (kind_) {
    case Kind::kReLU: return ops::BnActivation::kReLU;
    case Kind::kHardswish: return ops::BnActivation::kHardswish;
    case Kind::kSiLU: break;
  }
  return ops::BnActivation::kSiLU;
}

Tensor Activation::forward_impl(const Tensor& x) {
  if (fused_) return x;
  switch (kind_) {
    case Kind::kReLU: return ops::relu(x);
    case Kind::kHardswish: return ops::hardswish(x);
    case Kind::kSiLU: break;
  }
  return ops::silu(x);
}

int Activation::trace(Trace& trace, int x, const std::string& path) const {
  return fused_ ? x : trace.add({"act", path, {x}, {}, {{"act", bn_activation_name(bn_activation())}}});
}

Dropout::Dropout(double p, uint64_t seed) : p_(p), gen_(seed) {}

Tensor Dropout::forward_impl(const Tensor& x) { return ops::dropout(x, p_, training(), gen_); }

int Dropout::trace(Trace&, int x, const std::string&) const { return x; }  // the identity in evaluation

}  // namespace pmpl
