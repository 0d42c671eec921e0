// `pmpl export --format onnx`: the folded network of any backbone (export.h's DeployModel, walked
// through its deployment graph, models/deploy/graph.h) as a standard ONNX graph, built with onnx's own protobuf schema (Debian's libonnx-dev): opset 17, NCHW float
// images [batch, 3, size, size] normalised as the config says in, logits [batch, classes] out;
// batchnorms folded, fixed enhancers as plain pools, adds and the strip attention's ops; the
// class names, input size, mean, std and genotype in the model's metadata_props (docs/FORMAT.md,
// "ONNX"); an int8 model as a QuantizeLinear/DequantizeLinear graph of the same quantised
// network. The graph passes onnx's checker before a byte is written.
#pragma once

#include <string>

#include "models/deploy/export.h"

namespace pmpl::deploy {

inline constexpr int kOnnxOpset = 17;

// The serialised ModelProto. pmpl::Error when the model's tensors do not fit its architecture.
std::string onnx_model_bytes(const DeployModel& model);

// Writes onnx_model_bytes(model) to `path` (through a temporary file).
void export_onnx(const DeployModel& model, const std::string& path);

}  // namespace pmpl::deploy
