#include "engine/autograd.h"

#include <unordered_map>

#include "engine/ops.h"
#include "engine/profile.h"

namespace pmpl {
namespace {
thread_local bool g_grad_enabled = true;
thread_local const std::function<void(const TensorImpl*)>* g_leaf_hook = nullptr;

void accumulate_leaf(TensorImpl& leaf, const Tensor& grad) {
  PMPL_ASSERT(grad.shape() == leaf.shape && grad.dtype() == leaf.dtype,
              "leaf gradient {} {} does not match the leaf's {} {}", grad.shape().str(),
              dtype_name(grad.dtype()), leaf.shape.str(), dtype_name(leaf.dtype));
  Tensor existing(leaf.grad);
  if (!existing.defined()) {
    // A gradient nobody else holds (the usual case) is taken as it is; a shared one is copied,
    // since later accumulation writes into the leaf's buffer in place.
    const bool unshared = grad.impl_ptr().use_count() == 1 && grad.impl()->storage.use_count() == 1;
    leaf.grad = unshared ? grad.impl_ptr() : grad.clone().impl_ptr();
  } else {
    ops::axpy_(existing, 1.0, grad);
  }
}

}  // namespace

Tensors Node::apply(const Tensors& grad_outputs) {
  PMPL_CHECK(fn_ != nullptr,
             "backward through {} a second time: a graph is freed by its first backward; run the "
             "forward pass again",
             name_);
  BackwardFn fn = std::move(fn_);
  fn_ = nullptr;
  return fn(grad_outputs);  // `fn` and its saved tensors die on return
}

bool grad_enabled() { return g_grad_enabled; }

LeafGradientHook::LeafGradientHook(std::function<void(const TensorImpl*)> fn) : fn_(std::move(fn)) {
  PMPL_ASSERT(g_leaf_hook == nullptr, "LeafGradientHook: one is already installed on this thread");
  g_leaf_hook = &fn_;
}

LeafGradientHook::~LeafGradientHook() { g_leaf_hook = nullptr; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

void record(const char* name, const std::vector<const Tensor*>& inputs, const Tensors& outputs,
            Node::BackwardFn fn) {
  std::vector<Edge> next;
  next.reserve(inputs.size());
  for (const Tensor* t : inputs) {
    Edge edge;
    if (t->defined() && t->requires_grad()) {
      if (t->is_leaf()) {
        edge.leaf = t->impl_ptr();
      } else {
        edge.node = t->grad_fn();
        edge.output_nr = t->output_nr();
      }
    }
    next.push_back(std::move(edge));
  }
  std::vector<TensorMeta> metas;
  metas.reserve(outputs.size());
  for (const Tensor& y : outputs) metas.push_back({y.shape(), y.dtype(), y.device()});
  auto node = std::make_shared<Node>(name, std::move(next), std::move(metas), std::move(fn));
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* impl = outputs[i].impl();
    impl->grad_fn = node;
    impl->output_nr = static_cast<uint32_t>(i);
    impl->requires_grad = true;
  }
}

void run_backward(const Tensor& root, const Tensor& grad_in) {
  PMPL_CHECK(root.requires_grad(),
             "backward() on a tensor that does not require grad (no input of the computation "
             "was marked with set_requires_grad, or it ran under NoGradGuard)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    PMPL_CHECK(root.numel() == 1,
               "backward() without a gradient needs a one-element tensor; this one has shape {}",
               root.shape().str());
    grad = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  PMPL_CHECK(grad.shape() == root.shape(), "backward(): gradient shape {} differs from {}",
             grad.shape().str(), root.shape().str());
  NoGradGuard no_grad;
  const std::function<void(const TensorImpl*)>* hook = g_leaf_hook;
  if (root.is_leaf()) {
    accumulate_leaf(*root.impl(), grad);
    if (hook != nullptr) (*hook)(root.impl());
    return;
  }

  // Count, for every node reachable from the root, how many edges point at it: a node is ready
  // when all of them have delivered their gradient.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{root.grad_fn().get()};
  pending[stack.back()] = 0;
  std::unordered_map<const TensorImpl*, int> leaf_pending;  // only counted for a hook
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : node->next()) {
      if (edge.leaf && hook != nullptr) ++leaf_pending[edge.leaf.get()];
      if (!edge.node) continue;
      auto [it, inserted] = pending.try_emplace(edge.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(edge.node.get());
    }
  }

  std::unordered_map<Node*, Tensors> buffers;
  auto deliver = [&](Node* node, uint32_t slot, const Tensor& g) {
    Tensors& buf = buffers[node];
    if (buf.empty()) buf.resize(node->outputs().size());
    const TensorMeta& meta = node->outputs()[slot];
    PMPL_ASSERT(g.shape() == meta.shape, "{}: gradient for output {} has shape {}, expected {}",
                node->name(), slot, g.shape().str(), meta.shape.str());
    // Out of place: the first gradient may be shared with another consumer.
    buf[slot] = buf[slot].defined() ? ops::add(buf[slot], g) : g;
  };

  // Keep the nodes alive while they run even if their outputs are dropped meanwhile.
  std::vector<std::shared_ptr<Node>> ready{root.grad_fn()};
  deliver(root.grad_fn().get(), root.output_nr(), grad);
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensors grads = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grads.resize(node->outputs().size());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].defined()) continue;
      const TensorMeta& meta = node->outputs()[i];
      grads[i] = Tensor::zeros(meta.shape, meta.dtype, meta.device);
    }
    const ProfileRange range(node->name());
    const Tensors input_grads = node->apply(grads);
    grads.clear();
    PMPL_ASSERT(input_grads.size() == node->next().size(),
                "{}: backward returned {} gradients for {} inputs", node->name(),
                input_grads.size(), node->next().size());
    for (size_t i = 0; i < input_grads.size(); ++i) {
      const Edge& edge = node->next()[i];
      const Tensor& g = input_grads[i];
      if (edge.leaf) {
        if (g.defined()) accumulate_leaf(*edge.leaf, g);
        if (hook != nullptr && --leaf_pending[edge.leaf.get()] == 0) (*hook)(edge.leaf.get());
      } else if (edge.node) {
        if (g.defined()) deliver(edge.node.get(), edge.output_nr, g);
        if (--pending[edge.node.get()] == 0) ready.push_back(edge.node);
      }
    }
  }
}

}  // namespace pmpl
