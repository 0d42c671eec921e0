// A network traced into a graph of layers: what `pmpl export` folds into a deployment file for any
// backbone (models/deploy/graph.h) and the runtime runs. Each module says what it computes in
// evaluation mode as nodes over numbered values (Module::trace): value 0 is the network's input
// images [N, H, W, 3], and node k's output is value k + 1. A node holds the module's own tensors
// (weights, batchnorm statistics) by handle and its attributes as JSON; nothing is computed.
//
// The ops (docs/FORMAT.md, "The graph", for their exact meaning after folding):
//   conv (kernel, stride; weight [Cout, k, k, Cin], bias?)   depthwise (kernel, stride; weight [C, k, k])
//   batchnorm (eps, act; weight, bias, running_mean, running_var)   act (act)
//   linear (weight [out, in], bias)   add, mul (two inputs; mul broadcasts [N, 1, 1, C] or the like)
//   max_pool, avg_pool (kernel, stride, pad)   global_avg_pool (keep_dims: [N, 1, 1, C] or [N, C])
//   slice (begin, end: channels)   concat (channels)   channel_shuffle (groups)
//   enhancer (ops; a fixed Meta-Pooling enhancer with its batchnorm and strip attention's tensors)
// Activations ("act"): none, relu, relu6, hardswish, silu, sigmoid, hardsigmoid.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"

namespace pmpl {

struct TraceNode {
  std::string op;
  std::string name;  // the module's path ("features.3.conv.1.0"): the deployment tensors' prefix
  std::vector<int> inputs{};
  std::map<std::string, Tensor> tensors{};
  nlohmann::json attrs = nlohmann::json::object();
};

class Trace {
 public:
  static constexpr int kInput = 0;
  // Appends `node` (its inputs must exist) and returns its output's value.
  int add(TraceNode node);
  const std::vector<TraceNode>& nodes() const { return nodes_; }

 private:
  std::vector<TraceNode> nodes_;
};

// "a.b" from "a" and "b"; "b" when `prefix` is empty.
std::string join_path(const std::string& prefix, const std::string& name);

}  // namespace pmpl
