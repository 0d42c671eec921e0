// The autograd tape. An op whose inputs require grad (with grad mode on) records a Node: edges to
// where its inputs came from, and a backward function that captures what it saved. backward()
// orders the nodes reachable from the root and runs each once, after every consumer of its
// outputs has run; parameter (leaf) gradients accumulate with +=. A node's saved tensors are
// released as soon as it has run, so a graph can be walked once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace pmpl {

struct TensorMeta {
  Shape shape;
  DType dtype;
  Device device;
};

// Where an input's gradient goes: into another node's output slot, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  uint32_t output_nr = 0;
  bool connected() const { return node != nullptr || leaf != nullptr; }
};

class Node {
 public:
  // Gets one gradient per output (zeros where an output got none) and returns one per input
  // (an undefined Tensor where an input needs none). Runs with grad mode off.
  using BackwardFn = std::function<Tensors(const Tensors& grad_outputs)>;

  Node(const char* name, std::vector<Edge> next, std::vector<TensorMeta> outputs, BackwardFn fn)
      : name_(name), next_(std::move(next)), outputs_(std::move(outputs)), fn_(std::move(fn)) {}

  const char* name() const { return name_; }
  const std::vector<Edge>& next() const { return next_; }
  const std::vector<TensorMeta>& outputs() const { return outputs_; }
  // Runs the backward function once and releases everything it captured.
  Tensors apply(const Tensors& grad_outputs);

 private:
  const char* name_;
  std::vector<Edge> next_;
  std::vector<TensorMeta> outputs_;
  BackwardFn fn_;
};

bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op on these inputs must record a node: grad mode is on and one of them requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Makes `outputs` differentiable functions of `inputs` through `fn` (see Node::BackwardFn).
// Inputs may be undefined (optional arguments); they get no edge.
void record(const char* name, const std::vector<const Tensor*>& inputs, const Tensors& outputs,
            Node::BackwardFn fn);

// Backpropagates `grad` (same shape as root) from root through the recorded graph.
void run_backward(const Tensor& root, const Tensor& grad);

// While one lives, backward on this thread calls `fn` with each leaf whose gradient is complete
// for this backward (every edge into it has delivered), in the order backward completes them.
// Data-parallel training uses it to send gradient buckets off while backward goes on. One per
// thread at a time.
class LeafGradientHook {
 public:
  explicit LeafGradientHook(std::function<void(const TensorImpl* leaf)> fn);
  ~LeafGradientHook();
  LeafGradientHook(const LeafGradientHook&) = delete;
  LeafGradientHook& operator=(const LeafGradientHook&) = delete;

 private:
  std::function<void(const TensorImpl*)> fn_;
};

}  // namespace pmpl
