// The models the CLI knows by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/network.h"

namespace pmpl {

// Each backbone plain and with Meta-Pooling enhancers (the name with "_mp"): mobilenetv2,
// mobilenetv3_large, mobilenetv3_small, efficientnet_b0, shufflenetv2_x0_5, shufflenetv2_x1_0.
const std::vector<std::string>& model_names();
// Throws pmpl::Error for an unknown name, listing the known ones. Sets config.meta_pooling from
// the name.
std::shared_ptr<Network> build_model(const std::string& name, ModelConfig config);

}  // namespace pmpl
