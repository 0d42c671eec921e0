#include "train/initial_weights.h"

#include <set>
#include <vector>

#include <fmt/format.h>

#include "engine/error.h"
#include "layers/weights.h"

namespace pmpl {
namespace {

bool is_classifier(const std::string& name) { return name.rfind("classifier.", 0) == 0; }
bool is_enhancer(const std::string& name) { return name.find(".enhancer.") != std::string::npos; }

}  // namespace

std::string InitialWeights::summary() const {
  std::string s = fmt::format("{} tensors loaded", loaded);
  if (classifier_reset) s += ", the classifier reset (another class count)";
  if (fresh_enhancers > 0) s += fmt::format(", {} Meta-Pooling tensors fresh (not in the file)", fresh_enhancers);
  return s;
}

InitialWeights load_initial_weights(Module& model, const TensorFile& file, const std::string& where) {
  InitialWeights out;
  const std::vector<NamedTensor> state = model.state();
  // The classifier is reset as a whole when any of its tensors has another shape in the file.
  for (const NamedTensor& t : state) {
    const Tensor src = file.find(t.name);
    if (is_classifier(t.name) && src.defined() && !(src.shape() == t.tensor.shape())) out.classifier_reset = true;
  }
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> used;
  for (const NamedTensor& t : state) {
    used.insert(t.name);
    const Tensor src = file.find(t.name);
    if (out.classifier_reset && is_classifier(t.name)) continue;
    if (!src.defined()) {
      if (is_enhancer(t.name)) ++out.fresh_enhancers;
      else missing.push_back(t.name);
    } else if (!(src.shape() == t.tensor.shape())) {
      mismatched.push_back(fmt::format("{} ({} in the file, {} here)", t.name, src.shape().str(), t.tensor.shape().str()));
    }
  }
  for (const auto& [name, t] : file.tensors) {
    if (!used.count(name) && !is_training_state(name)) unexpected.push_back(name);
  }
  const char* hint = "check --model, --width and --small-input";
  PMPL_CHECK(mismatched.empty(), "--initial-checkpoint {}: shapes differ for {}: {}", where, first_few(mismatched), hint);
  PMPL_CHECK(missing.empty(), "--initial-checkpoint {} lacks {}: {}", where, first_few(missing), hint);
  PMPL_CHECK(unexpected.empty(), "--initial-checkpoint {} has tensors this network does not: {}: {}", where,
             first_few(unexpected), hint);
  for (const NamedTensor& t : state) {
    const Tensor src = file.find(t.name);
    if (!src.defined() || (out.classifier_reset && is_classifier(t.name))) continue;
    Tensor dst = t.tensor;
    dst.copy_(src);
    ++out.loaded;
  }
  return out;
}

}  // namespace pmpl
