// A checkpoint's pmpl.model metadata: which network to rebuild (registry name and
// ModelConfig), read with every field type- and range-checked (train/metadata_fields.h).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "models/network.h"

namespace pmpl {

struct ModelDescription {
  std::string name;
  ModelConfig config;
  nlohmann::json to_json() const;
  // `where` names the file in errors.
  static ModelDescription from_json(const nlohmann::json& j, const std::string& where);
};

}  // namespace pmpl
