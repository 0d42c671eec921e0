#include "layers/squeeze_excitation.h"

#include "engine/ops.h"

namespace pmpl {

SqueezeExcitation::SqueezeExcitation(int64_t channels, int64_t squeeze_channels, Kind kind, Generator& gen)
    : kind_(kind) {
  fc1_ = register_module("fc1", std::make_shared<Conv2d>(channels, squeeze_channels, 1, 1, true, gen));
  fc2_ = register_module("fc2", std::make_shared<Conv2d>(squeeze_channels, channels, 1, 1, true, gen));
}

Tensor SqueezeExcitation::forward_impl(const Tensor& x) {
  PMPL_CHECK(x.rank() == 4, "SqueezeExcitation expects [N, H, W, C], got {}", x.shape().str());
  const Tensor pooled = ops::reshape(ops::global_avg_pool(x), Shape{x.dim(0), 1, 1, x.dim(3)});
  const Tensor s = fc1_->forward(pooled);
  if (kind_ == Kind::kMobileNetV3) return ops::mul(x, ops::hardsigmoid(fc2_->forward(ops::relu(s))));
  return ops::mul(x, ops::sigmoid(fc2_->forward(ops::silu(s))));
}

int SqueezeExcitation::trace(Trace& trace, int x, const std::string& path) const {
  const bool v3 = kind_ == Kind::kMobileNetV3;
  const int pooled = trace.add({"global_avg_pool", path, {x}, {}, {{"keep_dims", true}}});
  int s = fc1_->trace(trace, pooled, join_path(path, "fc1"));
  s = trace.add({"act", path, {s}, {}, {{"act", v3 ? "relu" : "silu"}}});
  s = fc2_->trace(trace, s, join_path(path, "fc2"));
  s = trace.add({"act", path, {s}, {}, {{"act", v3 ? "hardsigmoid" : "sigmoid"}}});
  return trace.add({"mul", path, {x, s}});
}

}  // namespace pmpl
