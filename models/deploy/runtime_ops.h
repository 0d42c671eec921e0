// The layers the deployment runtime runs in f32, shared by MobileNetV2's fixed walk
// (runtime.cpp) and the graph of any backbone (graph_runtime.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/tensor.h"
#include "layers/pool_op.h"

namespace pmpl::deploy {

using TensorLookup = std::function<const Tensor&(const std::string& name)>;

// A 1x1 stride-1 conv (weight [Cout, 1, 1, Cin]) with its folded bias over NHWC x: one GEMM over
// all pixels. With an activation, the bias and the activation are one pass after it
// (ops::channel_affine); without, the bias is the GEMM's initial value.
Tensor run_conv1x1(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   ops::ChannelActivation act = ops::ChannelActivation::kNone);

// A fixed Meta-Pooling enhancer on y: its ops summed, then hardswish(sum * scale + shift). Reads
// "<name>.scale", "<name>.shift" and, for strip, "<name>.strip.conv1.*", ".conv_h.*", ".conv_w.*".
Tensor run_enhancer(const Tensor& y, const std::vector<PoolOp>& ops, const std::string& name, const TensorLookup& weight);

}  // namespace pmpl::deploy
