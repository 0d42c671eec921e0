#include "train/checkpoint.h"

#include "engine/error.h"
#include "layers/weights.h"

namespace pmpl {

void apply_fixed(Network& model, const Genotype& fixed, const std::string& where) {
  const auto enhancers = model.enhancers();
  PMPL_CHECK(fixed.enhancers.size() == enhancers.size(), "{}: {} enhancers recorded, the network has {}",
             where, fixed.enhancers.size(), enhancers.size());
  for (size_t i = 0; i < enhancers.size(); ++i) {
    const Genotype::Entry& e = fixed.enhancers[i];
    PMPL_CHECK(e.name == enhancers[i].first, "{}: enhancer {} is {} in the file", where, enhancers[i].first, e.name);
    if (!e.fixed() || enhancers[i].second->fixed()) continue;
    if (e.removed) {
      enhancers[i].second->remove(/*fold=*/false);  // the weights loaded next carry it
    } else {
      enhancers[i].second->fix(e.ops);
    }
  }
}

bool describes_model(const TensorFile& file) { return file.metadata.count("pmpl.model") > 0; }

TensorFile ema_weights(const TensorFile& file, const std::string& where) {
  TensorFile out;
  out.metadata = file.metadata;
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("ema.", 0) == 0) out.tensors.emplace_back(name.substr(4), t);
  }
  PMPL_CHECK(!out.tensors.empty(), "{} holds no average of the weights: it was trained without --model-ema (drop --ema)",
             where);
  return out;
}

std::shared_ptr<Network> load_model_from_file(const std::string& path, bool ema) {
  const TensorFile file = load_safetensors(path);
  PMPL_CHECK(describes_model(file),
             "{} does not say which network it holds (no pmpl.model metadata): pass --model and its flags",
             path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(file.metadata.at("pmpl.model"));
  } catch (const nlohmann::json::exception&) {
    PMPL_CHECK(false, "{}: pmpl.model metadata is not JSON", path);
  }
  const ModelDescription d = ModelDescription::from_json(j, path);
  auto model = build_model(d.name, d.config);
  if (file.metadata.count("pmpl.fixed")) {
    nlohmann::json fixed;
    try {
      fixed = nlohmann::json::parse(file.metadata.at("pmpl.fixed"));
    } catch (const nlohmann::json::exception&) {
      PMPL_CHECK(false, "{}: pmpl.fixed metadata is not JSON", path);
    }
    apply_fixed(*model, Genotype::from_json(fixed, path), path);
  }
  load_weights(*model, ema ? ema_weights(file, path) : file, path);
  return model;
}

}  // namespace pmpl
