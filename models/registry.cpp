#include "models/registry.h"

#include <fmt/ranges.h>

#include "engine/error.h"
#include "models/efficientnet.h"
#include "models/mobilenetv2.h"
#include "models/mobilenetv3.h"
#include "models/shufflenetv2.h"

namespace pmpl {

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{
      "mobilenetv2",       "mobilenetv2_mp",       "mobilenetv3_large", "mobilenetv3_large_mp",
      "mobilenetv3_small", "mobilenetv3_small_mp", "efficientnet_b0",   "efficientnet_b0_mp",
      "shufflenetv2_x0_5", "shufflenetv2_x0_5_mp", "shufflenetv2_x1_0", "shufflenetv2_x1_0_mp"};
  return names;
}

std::shared_ptr<Network> build_model(const std::string& name, ModelConfig config) {
  const bool mp = name.size() > 3 && name.compare(name.size() - 3, 3, "_mp") == 0;
  const std::string backbone = mp ? name.substr(0, name.size() - 3) : name;
  config.meta_pooling = mp;
  if (backbone == "mobilenetv2") return std::make_shared<MobileNetV2>(name, config);
  if (backbone == "mobilenetv3_large") return std::make_shared<MobileNetV3>(name, true, config);
  if (backbone == "mobilenetv3_small") return std::make_shared<MobileNetV3>(name, false, config);
  if (backbone == "efficientnet_b0") return std::make_shared<EfficientNet>(name, config);
  if (backbone == "shufflenetv2_x0_5") return std::make_shared<ShuffleNetV2>(name, true, config);
  if (backbone == "shufflenetv2_x1_0") return std::make_shared<ShuffleNetV2>(name, false, config);
  throw Error(fmt::format("unknown model '{}': use one of {}", name, fmt::join(model_names(), ", ")));
}

}  // namespace pmpl
