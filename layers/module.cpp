#include "layers/module.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/profile.h"

namespace pmpl {
namespace {
thread_local LayerRecorder* g_recorder = nullptr;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Points `t`'s implementation at `replacement`'s data, so every handle to `t` sees it.
void adopt(const Tensor& t, const Tensor& replacement) {
  if (replacement.is_same(t)) return;
  TensorImpl* impl = t.impl();
  impl->storage = replacement.impl()->storage;
  impl->offset = replacement.impl()->offset;
  impl->dtype = replacement.dtype();
  impl->grad.reset();
}

template <class Convert>
void convert_all(Module& m, Convert convert) {
  for (const NamedParameter& p : m.parameters()) adopt(p.tensor, convert(p.tensor));
  for (const NamedTensor& b : m.buffers()) adopt(b.tensor, convert(b.tensor));
}
}  // namespace

Tensor Module::forward(const Tensor& x) {
  const ProfileRange range(type_name());
  Tensor y = forward_impl(x);
  if (g_recorder != nullptr && children_.empty()) g_recorder->records_.push_back({this, x.shape(), y.shape()});
  return y;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(DType dtype) {
  convert_all(*this, [dtype](const Tensor& t) { return is_floating(t.dtype()) ? t.to(dtype) : t; });
}

void Module::to(Device device) {
  convert_all(*this, [device](const Tensor& t) { return t.to(device); });
}

std::vector<NamedParameter> Module::parameters(const std::string& prefix) const {
  std::vector<NamedParameter> out;
  for (const NamedParameter& p : params_) out.push_back({join(prefix, p.name), p.tensor, p.kind});
  for (const auto& [name, child] : children_) {
    for (NamedParameter& p : child->parameters(join(prefix, name))) out.push_back(std::move(p));
  }
  return out;
}

std::vector<NamedTensor> Module::buffers(const std::string& prefix) const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& b : buffers_) out.push_back({join(prefix, b.name), b.tensor});
  for (const auto& [name, child] : children_) {
    for (NamedTensor& b : child->buffers(join(prefix, name))) out.push_back(std::move(b));
  }
  return out;
}

std::vector<NamedTensor> Module::state(const std::string& prefix) const {
  std::vector<NamedTensor> out;
  for (const NamedParameter& p : params_) out.push_back({join(prefix, p.name), p.tensor});
  for (const NamedTensor& b : buffers_) out.push_back({join(prefix, b.name), b.tensor});
  for (const auto& [name, child] : children_) {
    for (NamedTensor& t : child->state(join(prefix, name))) out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::modules(const std::string& prefix) const {
  std::vector<std::pair<std::string, const Module*>> out{{prefix, this}};
  for (const auto& [name, child] : children_) {
    for (auto& entry : child->modules(join(prefix, name))) out.push_back(std::move(entry));
  }
  return out;
}

Tensor Module::register_parameter(std::string name, Tensor tensor, ParamKind kind) {
  PMPL_ASSERT(tensor.is_leaf(), "parameter {} must be a leaf tensor", name);
  tensor.set_requires_grad(true);
  params_.push_back({std::move(name), tensor, kind});
  return tensor;
}

Tensor Module::register_buffer(std::string name, Tensor tensor) {
  buffers_.push_back({std::move(name), tensor});
  return tensor;
}

void Module::unregister_parameter(const std::string& name) {
  std::erase_if(params_, [&](const NamedParameter& p) { return p.name == name; });
}

void Module::unregister_module(const std::string& name) {
  std::erase_if(children_, [&](const auto& child) { return child.first == name; });
}

void Sequential::append(std::shared_ptr<Module> module) {
  register_module(std::to_string(children().size()), std::move(module));
}

Tensor Sequential::forward_impl(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, child] : children()) y = child->forward(y);
  return y;
}

int Module::trace(Trace&, int, const std::string& path) const {
  PMPL_CHECK(false, "{} ({}) has no deployment form yet: it cannot be exported", path.empty() ? "the network" : path,
             type_name());
  return 0;
}

int Sequential::trace(Trace& trace, int x, const std::string& path) const {
  for (const auto& [name, child] : children()) x = child->trace(trace, x, join_path(path, name));
  return x;
}

LayerRecorder::LayerRecorder() {
  PMPL_ASSERT(g_recorder == nullptr, "only one LayerRecorder may be active");
  g_recorder = this;
}

LayerRecorder::~LayerRecorder() { g_recorder = nullptr; }

}  // namespace pmpl
