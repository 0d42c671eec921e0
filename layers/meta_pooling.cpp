#include "layers/meta_pooling.h"

#include <algorithm>
#include <array>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/init.h"

namespace pmpl {
namespace {

void check_ops(const std::vector<PoolOp>& ops) {
  PMPL_CHECK(ops.size() == 1 || ops.size() == 2,
             "a Meta-Pooling enhancer is fixed to one op or two, got {}", ops.size());
  PMPL_CHECK(ops.size() == 1 || ops[0] != ops[1], "a Meta-Pooling enhancer cannot take {} twice",
             pool_op_name(ops[0]));
}

}  // namespace

Tensor run_pool_op(PoolOp op, const Tensor& x, Module* strip) {
  switch (op) {
    case PoolOp::kSkip: return x;
    case PoolOp::kStrip: return strip->forward(x);
    case PoolOp::kMax3: return ops::max_pool2d(x, 3, 1, 1);
    case PoolOp::kMax5: return ops::max_pool2d(x, 5, 1, 2);
    case PoolOp::kMax7: return ops::max_pool2d(x, 7, 1, 3);
    case PoolOp::kAvg3: return ops::avg_pool2d(x, 3, 1, 1);
    case PoolOp::kAvg5: return ops::avg_pool2d(x, 5, 1, 2);
    case PoolOp::kAvg7: return ops::avg_pool2d(x, 7, 1, 3);
  }
  PMPL_ASSERT(false, "unknown pool op {}", static_cast<int>(op));
  return x;
}

StripAttention::StripAttention(int64_t channels, Generator& gen) {
  const int64_t mid = std::max<int64_t>(8, channels / 32);
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(channels, mid, 1, 1, true, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm>(mid, ops::BnActivation::kHardswish));
  conv_h_ = register_module("conv_h", std::make_shared<Conv2d>(mid, channels, 1, 1, true, gen));
  conv_w_ = register_module("conv_w", std::make_shared<Conv2d>(mid, channels, 1, 1, true, gen));
}

Tensor StripAttention::forward_impl(const Tensor& x) {
  const Tensors a = attention(x);
  return ops::mul(ops::mul(x, a[1]), a[0]);
}

Tensors StripAttention::attention(const Tensor& x) {
  PMPL_CHECK(x.rank() == 4, "strip attention expects [N, H, W, C], got {}", x.shape().str());
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  // [N, H + W, C]: per-row means, then per-column means.
  const Tensor pooled = ops::strip_pool(x);
  const Tensor mixed = bn1_->forward(conv1_->forward(pooled));  // with its hardswish fused
  const Tensors parts = ops::split(mixed, {h, w}, 1);
  const Tensor a_h = ops::sigmoid(conv_h_->forward(parts[0])).reshape(Shape{n, h, 1, c});
  const Tensor a_w = ops::sigmoid(conv_w_->forward(parts[1])).reshape(Shape{n, 1, w, c});
  return {a_h, a_w};
}

// The enhancer's batchnorm starts with gamma = 0.1, beta = 3.5: every normalised value above -5
// standard deviations lands where hardswish is the identity (>= 3), so a fresh enhancer is an
// affine map of its mixture (which the projection's batchnorm absorbs) and the block computes
// what plain MobileNetV2's does; training moves it into hardswish's curve where that helps.
// PyTorch's default (1, 0) puts every channel on hardswish's bend; on the main job's budget the
// all-skip network then scores 1.7-4.0 points lower (docs/PMPL.md, "The enhancer at initialisation").
std::shared_ptr<BatchNorm> MetaPooling::make_batchnorm(int64_t channels) {
  return std::make_shared<BatchNorm>(channels, ops::BnActivation::kHardswish, kBatchNormWeightInit, kBatchNormBiasInit);
}

MetaPooling::MetaPooling(int64_t channels, Generator& gen, bool gated) {
  alpha_ = register_parameter("alpha", init::normal(Shape{kNumPoolOps}, 1e-3, gen), ParamKind::kArch);
  strip_ = register_module("strip", std::make_shared<StripAttention>(channels, gen));
  bn_ = register_module("bn", make_batchnorm(channels));
  // Registered last, drawing nothing from `gen`: a gated network's other tensors start as an
  // ungated one's.
  if (gated) gate_ = register_parameter("gate", Tensor::zeros(Shape{2}, DType::kF32), ParamKind::kArch);
}

MetaPooling::MetaPooling(int64_t channels, std::vector<PoolOp> ops, Generator& gen)
    : fixed_ops_(std::move(ops)) {
  check_ops(fixed_ops_);
  if (std::find(fixed_ops_.begin(), fixed_ops_.end(), PoolOp::kStrip) != fixed_ops_.end()) {
    strip_ = register_module("strip", std::make_shared<StripAttention>(channels, gen));
  }
  bn_ = register_module("bn", make_batchnorm(channels));
}

std::shared_ptr<MetaPooling> MetaPooling::make_removed() {
  // make_shared cannot reach the private constructor.
  std::shared_ptr<MetaPooling> removed(new MetaPooling());
  removed->removed_ = true;
  return removed;
}

void MetaPooling::freeze_alpha() {
  unregister_parameter("alpha");
  alpha_ = alpha_.detach();
  register_buffer("alpha", alpha_);
  if (gate_.defined()) {
    unregister_parameter("gate");
    gate_ = gate_.detach();
    register_buffer("gate", gate_);
  }
}

void MetaPooling::fix(std::vector<PoolOp> ops) {
  PMPL_ASSERT(!fixed(), "enhancer fixed twice");
  check_ops(ops);
  fixed_ops_ = std::move(ops);
  freeze_alpha();
  if (std::find(fixed_ops_.begin(), fixed_ops_.end(), PoolOp::kStrip) == fixed_ops_.end()) {
    unregister_module("strip");
    strip_.reset();
  }
}

void MetaPooling::remove(bool fold) {
  PMPL_ASSERT(!fixed(), "enhancer fixed twice");
  if (fold && next_conv_ && !gated()) {
    // Its weights [out, kh, kw, in]: the input channel is the last dim, so [C] broadcasts.
    const NoGradGuard no_grad;
    Tensor w = next_conv_->weight();
    const std::vector<double> scale = bn_->evaluation_scale();
    PMPL_ASSERT(w.rank() == 4 && w.dim(3) == static_cast<int64_t>(scale.size()),
                "the convolution after an enhancer of {} channels has weights {}", scale.size(), w.shape().str());
    w.copy_(ops::mul(w, Tensor::from_vector(scale, Shape{w.dim(3)}).to(w.dtype()).to(w.device())));
  }
  removed_ = true;
  freeze_alpha();
  unregister_module("strip");
  strip_.reset();
  unregister_module("bn");
  bn_.reset();
}

BatchNorm& MetaPooling::batchnorm() {
  PMPL_ASSERT(bn_ != nullptr, "a removed enhancer has no batchnorm");
  return *bn_;
}

std::vector<double> MetaPooling::probabilities() const {
  if (!alpha_.defined()) return {};
  return probabilities_of(alpha_.detach().to(Device::cpu()));
}

std::vector<double> MetaPooling::gate_probabilities() const {
  if (!gate_.defined()) return {};
  return probabilities_of(gate_.detach().to(Device::cpu()));
}

std::vector<double> MetaPooling::probabilities_of(const Tensor& alpha) {
  NoGradGuard no_grad;
  return ops::softmax(alpha.to(DType::kF64)).to_vector<double>();
}

int MetaPooling::trace(Trace& trace, int x, const std::string& path) const {
  PMPL_CHECK(fixed(), "{} is still searching: finish the search, or export with --fix-remaining to fix it (and any "
                      "other open enhancer) to its most probable op", path);
  if (removed_) return x;
  TraceNode node{"enhancer", path, {x}, {}, {{"eps", bn_->eps()}}};
  nlohmann::json names = nlohmann::json::array();
  for (PoolOp op : fixed_ops_) names.push_back(std::string(pool_op_name(op)));
  node.attrs["ops"] = names;
  if (strip_) node.attrs["strip_eps"] = strip_->batchnorm_eps();
  for (const NamedTensor& t : state()) {
    const bool counter = t.name.size() > 19 && t.name.compare(t.name.size() - 19, 19, "num_batches_tracked") == 0;
    if (t.name != "alpha" && t.name != "gate" && !counter) node.tensors[t.name] = t.tensor;
  }
  return trace.add(std::move(node));
}

Tensor MetaPooling::forward_impl(const Tensor& x) {
  if (removed_) return x;
  Tensor mixed;
  if (fixed()) {
    for (PoolOp op : fixed_ops_) {
      const Tensor y = run_pool_op(op, x, strip_.get());
      mixed = mixed.defined() ? ops::add(mixed, y) : y;
    }
  } else {
    // The fused op: the pools from one pass over x (separable row and column stages) and the
    // strip branch formed from its attention, only the mixture written. On the CPU too it beats
    // the separate ops + weighted_sum (`pmpl bench ops --filter pool_mix`).
    const Tensors a = strip_->attention(x);
    mixed = ops::meta_pool_mix(x, a[0], a[1], ops::softmax(alpha_));
    if (gated()) {
      // Weighed against the input itself (the batchnorm with the enhancer's hardswish fused).
      const Tensor enhanced = bn_->forward(mixed);
      const Tensor q = ops::softmax(gate_);
      if (x.dtype() == q.dtype()) return ops::weighted_sum({x, enhanced}, q);
      // Mixed precision on a GPU: the weighted sum's kernel there is f32 only (engine/ops.h).
      return ops::cast(ops::weighted_sum({ops::cast(x, q.dtype()), ops::cast(enhanced, q.dtype())}, q), x.dtype());
    }
  }
  return bn_->forward(mixed);  // batchnorm with the enhancer's hardswish fused
}

}  // namespace pmpl
