// Module: a layer or a network. It owns named parameters (trainable tensors), buffers (state
// such as batchnorm running statistics) and child modules; names compose with dots, exactly as
// PyTorch's state_dict keys ("features.3.conv.1.0.weight"), so weights map one to one.
// forward() is non-virtual: it runs the subclass's forward_impl and, when a summary is being
// recorded, notes the layer's shapes.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "layers/trace.h"

namespace pmpl {

// How the trainer treats a parameter: weights get weight decay, norm scales and biases do not,
// and architecture parameters (Meta-Pooling alphas) have an optimizer of their own.
enum class ParamKind : uint8_t { kWeight, kNoDecay, kArch };

struct NamedParameter {
  std::string name;
  Tensor tensor;
  ParamKind kind;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

class Module;

// One row of `pmpl summary`: a leaf module's output and its cost per image.
struct LayerRecord {
  const Module* module;
  Shape input;
  Shape output;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  Tensor forward(const Tensor& x);

  // Training or evaluation mode, for this module and everything below it.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  // Converts every floating-point parameter and buffer (f64 for whole-model gradient checks),
  // or moves all of them to a device, in place: handles held by layers stay valid.
  void to(DType dtype);
  void to(Device device);

  // Everything below this module, names prefixed with `prefix` (dotted), registration order.
  std::vector<NamedParameter> parameters(const std::string& prefix = "") const;
  std::vector<NamedTensor> buffers(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, const Module*>> modules(const std::string& prefix = "") const;
  // Parameters and buffers in PyTorch's state_dict order: per module its parameters, its
  // buffers, then its children.
  std::vector<NamedTensor> state(const std::string& prefix = "") const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

  // What `pmpl summary` shows: a short type name and multiply-accumulates per image for one
  // forward with this input/output shape (conv and linear layers; 0 for the rest).
  virtual std::string type_name() const = 0;
  virtual int64_t macs(const Shape& input, const Shape& output) const { return 0; }
  // What the module computes in evaluation mode, as graph nodes (layers/trace.h) reading value
  // `x`; returns its output's value. `path` is the module's name in the network. A module with
  // no deployment form says so (pmpl::Error naming it).
  virtual int trace(Trace& trace, int x, const std::string& path) const;

 protected:
  virtual Tensor forward_impl(const Tensor& x) = 0;
  // Registering returns the stored handle, so a layer can keep it as a member.
  Tensor register_parameter(std::string name, Tensor tensor, ParamKind kind = ParamKind::kWeight);
  Tensor register_buffer(std::string name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }
  // Forgets a parameter (a Meta-Pooling candidate that was dropped).
  void unregister_parameter(const std::string& name);
  void unregister_module(const std::string& name);

 private:
  std::vector<NamedParameter> params_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Children run in order, named "0", "1", ... like torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  void append(std::shared_ptr<Module> module);
  size_t size() const { return children().size(); }
  std::string type_name() const override { return "Sequential"; }
  int trace(Trace& trace, int x, const std::string& path) const override;

 protected:
  Tensor forward_impl(const Tensor& x) override;
};

// Records every leaf module's shapes during forward passes while alive (one at a time, on the
// thread that created it).
class LayerRecorder {
 public:
  LayerRecorder();
  ~LayerRecorder();
  LayerRecorder(const LayerRecorder&) = delete;
  LayerRecorder& operator=(const LayerRecorder&) = delete;
  const std::vector<LayerRecord>& records() const { return records_; }

 private:
  friend class Module;
  std::vector<LayerRecord> records_;
};

}  // namespace pmpl
