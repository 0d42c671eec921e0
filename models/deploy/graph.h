// The deployment graph: a traced network (layers/trace.h) with its batchnorms folded, as the
// `graph` of a deployment file's config (docs/FORMAT.md, "The graph"), and the runtime that runs
// one. Any backbone whose modules can trace themselves exports this way.
//
// Folding: a batchnorm whose input is a conv used by nothing else goes into that conv
// (W' = W * s, b' = beta + (b - mean) * s, s = gamma / sqrt(var + eps)); any other batchnorm
// becomes an `affine` node (scale, shift); an activation after a conv, depthwise conv or affine
// used by nothing else becomes that node's `act`; an enhancer's batchnorm becomes its scale and
// shift and its strip attention's bn1 goes into conv1. Nodes are then numbered afresh.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "layers/trace.h"
#include "models/deploy/export.h"
#include "models/deploy/runtime_ops.h"

namespace pmpl::deploy {

// The folded graph of `trace` (its output: value `output`) as {"nodes": [...], "output": v},
// with its tensors added to `tensors` under each node's name ("<name>.weight", ...).
nlohmann::json fold_trace(const Trace& trace, int output, std::map<std::string, FoldedTensor>& tensors);

// A deployment graph ready to run over the runtime's tensors (held by reference: they must
// outlive it). pmpl::Error naming `where` for an unknown op, a bad input or a missing tensor.
// With `activations` (an int8 file's calibrated {value name: [scale, zero point]}), the nodes
// with int8 weights run in int8 (models/deploy/graph_int8.h).
class GraphProgram {
 public:
  GraphProgram(const nlohmann::json& graph, const std::map<std::string, Tensor>& tensors, const std::string& where,
               const nlohmann::json* activations = nullptr);
  ~GraphProgram();
  // Logits for normalised f32 images [N, H, W, 3]. With `observe`, each node's value is passed to
  // it under the node's name, and what a conv, depthwise conv or linear node reads under
  // "input:" + its name (int8 calibration).
  using Observer = std::function<void(const std::string& name, const Tensor& value)>;
  Tensor run(const Tensor& images, const Observer* observe = nullptr) const;

 private:
  struct Node;
  void quantize_node(Node& n, const nlohmann::json& j, const nlohmann::json& activations, const std::string& where);
  Tensor run_f32(const Node& n, const Tensor& x, const Tensor& x2, const TensorLookup& lookup,
                 const Observer* observe) const;
  const std::map<std::string, Tensor>* tensors_;
  std::vector<Node> nodes_;
  int output_ = 0;
};

}  // namespace pmpl::deploy
