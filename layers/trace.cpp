#include "layers/trace.h"

#include "engine/error.h"

namespace pmpl {

int Trace::add(TraceNode node) {
  for (int v : node.inputs) {
    PMPL_ASSERT(v >= 0 && v <= static_cast<int>(nodes_.size()), "trace: {} reads value {}, only {} exist", node.name,
                v, nodes_.size() + 1);
  }
  nodes_.push_back(std::move(node));
  return static_cast<int>(nodes_.size());
}

std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace pmpl
