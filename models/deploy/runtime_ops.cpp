#include "models/deploy/runtime_ops.h"

#include "layers/meta_pooling.h"

namespace pmpl::deploy {

Tensor run_conv1x1(const Tensor& x, const Tensor& weight, const Tensor& bias, ops::ChannelActivation act) {
  const Tensor w2 = weight.reshape(Shape{weight.dim(0), weight.dim(-1)});
  if (act == ops::ChannelActivation::kNone) return ops::linear(x, w2, bias);
  return ops::channel_affine(ops::linear(x, w2, Tensor()), Tensor(), bias, act);
}

Tensor run_enhancer(const Tensor& y, const std::vector<PoolOp>& ops, const std::string& name, const TensorLookup& weight) {
  auto conv = [&](const Tensor& x, const std::string& conv, ops::ChannelActivation act) {
    return run_conv1x1(x, weight(conv + ".weight"), weight(conv + ".bias"), act);
  };
  Tensor mixed;
  for (PoolOp op : ops) {
    Tensor branch;
    if (op == PoolOp::kStrip) {
      const int64_t n = y.dim(0), h = y.dim(1), w = y.dim(2), c = y.dim(3);
      const Tensor mixed_strip = conv(ops::strip_pool(y), name + ".strip.conv1", ops::ChannelActivation::kHardswish);
      const Tensors parts = ops::split(mixed_strip, {h, w}, 1);
      const auto none = ops::ChannelActivation::kNone;
      const Tensor a_h = ops::sigmoid(conv(parts[0], name + ".strip.conv_h", none)).reshape(Shape{n, h, 1, c});
      const Tensor a_w = ops::sigmoid(conv(parts[1], name + ".strip.conv_w", none)).reshape(Shape{n, 1, w, c});
      branch = ops::mul(ops::mul(y, a_w), a_h);
    } else {
      branch = run_pool_op(op, y, nullptr);
    }
    mixed = mixed.defined() ? ops::add(mixed, branch) : branch;
  }
  return ops::channel_affine(mixed, weight(name + ".scale"), weight(name + ".shift"), ops::ChannelActivation::kHardswish);
}

}  // namespace pmpl::deploy
