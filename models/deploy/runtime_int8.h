// The int8 half of the deployment runtime (docs/FORMAT.md, "int8"): the layers of a quantised
// file packed for models/deploy/int8_kernels.h, built once at load. The stem stays in f32 (three
// input channels: 3.6% of MobileNetV2's MACs, and the input is what quantisation hurts most) and
// its output is quantised; every other conv and the classifier run in int8 with int32
// accumulation; an enhancer runs in f32 on its dequantised input and is quantised after its
// hardswish (its pools and strip attention are a few percent of the time).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "models/deploy/int8_kernels.h"
#include "models/genotype.h"
#include "models/mobilenetv2.h"

namespace pmpl::deploy {

struct QuantizedConv {
  int64_t in = 0, out = 0;
  int kernel = 1, stride = 1;
  bool depthwise = false;
  std::vector<int8_t> weight;  // dense: [out, in]
  std::vector<int16_t> taps;   // depthwise: [kernel * kernel][channels]
  Requantize requantize;
  QuantParams in_q, out_q;
};

struct QuantizedBlock {
  QuantParams in_q;  // the block's input (the residual add's other operand)
  std::optional<QuantizedConv> expand;
  QuantizedConv depthwise;
  const Genotype::Entry* enhancer = nullptr;  // with its output's parameters:
  QuantParams enhancer_q;
  QuantizedConv project;
  bool residual = false;
  QuantParams out_q;  // the block's output (the residual sum, or the projection)
};

struct QuantizedLayers {
  // `quantization` is the config's object; pmpl::Error when a tensor or parameter is missing or
  // out of range.
  QuantizedLayers(const nlohmann::json& quantization, const std::map<std::string, Tensor>& tensors,
                  const ArchitectureSpec& spec, const Genotype& genotype);

  QuantParams stem_q;
  std::vector<QuantizedBlock> blocks;
  QuantizedConv last;
  QuantParams pool_q;  // the pooled features: their own range, much narrower than the last conv's
  int64_t classes = 0, features = 0;
  std::vector<int8_t> classifier;      // [classes, features]
  std::vector<float> classifier_scale;  // in_scale * weight_scale[o]
  std::vector<float> classifier_bias;
};

}  // namespace pmpl::deploy
