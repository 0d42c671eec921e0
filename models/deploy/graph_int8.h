// The int8 layers of a quantised deployment graph (docs/FORMAT.md, "int8"): a 1x1 conv, a
// depthwise conv or a linear node whose weight the file stores as int8 (with "<name>.weight_scale")
// runs on uint8 activations with int32 accumulation (models/deploy/int8_kernels.h). Its output is
// requantised to uint8 with the node's own calibrated parameters where its activation is a clamp
// (none, ReLU, ReLU6), and is f32 otherwise (hardswish, SiLU, ...: the activation then runs in
// f32, and whatever reads the value in int8 quantises it with the same parameters). Adds and
// global average pools whose operands all have parameters run in uint8 too; every other node
// (enhancers, SE's multiply, slices, concatenations, shuffles, the stem) runs in f32 on dequantised
// inputs.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "models/deploy/int8_kernels.h"

namespace pmpl::deploy {

// A MobileNetV2 file's int8 points named after the layer rather than the module, with the graph
// node each one is (its stem's output and its pooled features).
inline constexpr std::pair<const char*, const char*> kLegacyInt8Points[] = {{"features.0", "features.0.0"},
                                                                            {"pool", "avgpool"}};

// An int8 file's config.quantization.activations keyed by graph node name.
nlohmann::json int8_activations(const nlohmann::json& config);

// The calibrated parameters of value `name`; pmpl::Error when missing or out of range.
QuantParams activation_params(const nlohmann::json& activations, const std::string& name);

// Whether a graph node runs in int8 once quantised: 1x1 convs (stride 1, no padding), depthwise
// convs (padding kernel / 2) and linear nodes that do not read the images themselves. The stem
// stays f32: three input channels are a few percent of the MACs, and the input is what
// quantisation hurts most.
bool int8_node(const nlohmann::json& node);

struct Int8Layer {
  bool depthwise = false;
  int64_t in = 0, out = 0;
  int kernel = 1, stride = 1;
  QuantParams in_q;
  bool u8_out = false;  // requantised, else f32
  PackedPointwise pointwise;  // 1x1 conv or linear
  PackedDepthwise packed_depthwise;
};

// Packs node `name` (op "conv", "depthwise" or "linear") from its int8 weight, weight_scale and
// bias. `out_q` is null for an f32 output.
Int8Layer pack_int8_layer(const std::map<std::string, Tensor>& tensors, const std::string& name, const std::string& op,
                          int kernel, int stride, QuantParams in_q, const QuantParams* out_q, Clamp clamp);

// Runs `layer` on uint8 x (NHWC, or [N, features] for a linear node); returns a uint8 or f32
// tensor as the layer says (before any non-clamp activation).
Tensor run_int8_layer(const Int8Layer& layer, const Tensor& x);

}  // namespace pmpl::deploy
