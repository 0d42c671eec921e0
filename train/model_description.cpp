#include "train/model_description.h"

#include <cstdint>

#include "train/metadata_fields.h"

namespace pmpl {

nlohmann::json ModelDescription::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"width", config.width},
                      {"num_classes", config.num_classes},
                      {"small_input", config.small_input},
                      {"dropout", config.dropout},
                      {"seed", config.seed}};
  j["genotype"] = config.genotype ? config.genotype->to_json() : nlohmann::json(nullptr);
  if (config.gated) j["gated"] = true;
  return j;
}

ModelDescription ModelDescription::from_json(const nlohmann::json& j, const std::string& where_file) {
  const std::string where = where_file + " (pmpl.model)";
  ModelDescription d;
  d.name = metadata::text(j, "name", where);
  // Wide bounds: they only keep a damaged value from becoming a network pmpl cannot build.
  d.config.width = metadata::number(j, "width", 1e-3, 100.0, where);
  d.config.num_classes = metadata::integer(j, "num_classes", 1, int64_t{1} << 24, where);
  d.config.small_input = metadata::boolean(j, "small_input", where);
  d.config.dropout = metadata::number(j, "dropout", 0.0, 1.0, where);
  d.config.seed = metadata::unsigned_integer(j, "seed", where);
  if (j.contains("genotype") && !j["genotype"].is_null()) d.config.genotype = Genotype::from_json(j["genotype"], where);
  // Written only for a gated search's network (files from before --gate have no such key).
  if (j.contains("gated")) d.config.gated = metadata::boolean(j, "gated", where);
  return d;
}

}  // namespace pmpl
