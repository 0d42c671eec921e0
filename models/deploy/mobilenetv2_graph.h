// The deployment graph (docs/FORMAT.md, "The graph") of a MobileNetV2 file, whose config holds no
// graph: MobileNetV2 files keep their fixed tensor layout (int8 reads it), and this is the graph
// those tensors mean, node for node what tracing and folding the network gives (names included),
// so whatever reads graphs (ONNX export) reads every backbone the same way.
#pragma once

#include <nlohmann/json.hpp>

namespace pmpl::deploy {

// From the config's architecture (mobilenetv2 or mobilenetv2_mp), width, small_input and genotype.
// pmpl::Error for any other architecture, an incomplete config or an open enhancer.
nlohmann::json mobilenetv2_graph(const nlohmann::json& config);

// The config's graph if it has one, else mobilenetv2_graph(config).
nlohmann::json deployment_graph(const nlohmann::json& config);

}  // namespace pmpl::deploy
