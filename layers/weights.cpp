#include "layers/weights.h"

#include <set>

#include "engine/error.h"

namespace pmpl {
std::string first_few(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 3) out += fmt::format(" and {} more", names.size() - 3);
  return out;
}

bool is_training_state(const std::string& name) { return name.rfind("optim.", 0) == 0 || name.rfind("ema.", 0) == 0; }

void save_weights(const Module& module, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const NamedTensor& t : module.state()) tensors.emplace_back(t.name, t.tensor);
  save_safetensors(path, tensors, metadata);
}

void load_weights(Module& module, const TensorFile& file, const std::string& where) {
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  for (const NamedTensor& t : module.state()) {
    const Tensor src = file.find(t.name);
    if (!src.defined()) {
      missing.push_back(t.name);
    } else if (!(src.shape() == t.tensor.shape())) {
      mismatched.push_back(fmt::format("{} ({} in the file, {} in the model)", t.name,
                                       src.shape().str(), t.tensor.shape().str()));
    }
    used.insert(t.name);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : file.tensors) {
    if (!used.count(name) && !is_training_state(name)) unexpected.push_back(name);
  }
  const char* hint = "check --model, --width, --num-classes, --small-input and --genotype";
  PMPL_CHECK(mismatched.empty(), "{}: shapes differ for {}: {}", where, first_few(mismatched), hint);
  PMPL_CHECK(missing.empty(), "{} lacks {}: {}", where, first_few(missing), hint);
  PMPL_CHECK(unexpected.empty(), "{} has tensors this model does not: {}: {}", where,
             first_few(unexpected), hint);
  for (const NamedTensor& t : module.state()) {
    Tensor dst = t.tensor;
    dst.copy_(file.find(t.name));
  }
}

void load_weights(Module& module, const std::string& path) {
  load_weights(module, load_safetensors(path), path);
}

}  // namespace pmpl
