// The models the CLI knows by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/mobilenetv2.h"

namespace pmpl {

// "mobilenetv2" and "mobilenetv2_mp" (with Meta-Pooling enhancers).
const std::vector<std::string>& model_names();
// Throws pmpl::Error for an unknown name, listing the known ones.
std::shared_ptr<MobileNetV2> build_model(const std::string& name, MobileNetV2Config config);

}  // namespace pmpl
