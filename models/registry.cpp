#include "models/registry.h"

#include "engine/error.h"

namespace pmpl {

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"mobilenetv2", "mobilenetv2_mp"};
  return names;
}

std::shared_ptr<MobileNetV2> build_model(const std::string& name, MobileNetV2Config config) {
  PMPL_CHECK(name == "mobilenetv2" || name == "mobilenetv2_mp",
             "unknown model '{}': use mobilenetv2 or mobilenetv2_mp", name);
  config.meta_pooling = name == "mobilenetv2_mp";
  return std::make_shared<MobileNetV2>(config);
}

}  // namespace pmpl
