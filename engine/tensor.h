// Tensor: a shared handle to a contiguous block of typed memory on one device, with the autograd
// fields (requires_grad, grad, grad_fn). Copies of a Tensor share the same data, as in PyTorch.
// Activations are NHWC; every tensor is contiguous (row-major), so a view is just an offset.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "engine/device.h"
#include "core/dtype.h"
#include "engine/error.h"
#include "engine/shape.h"

namespace pmpl {

class Node;
class Generator;

// A block of memory from a caching allocator; returned to it when the last tensor lets go.
// `pinned` host memory (page-locked, for fast asynchronous copies to a GPU) comes from its own
// allocator.
class Storage {
 public:
  Storage(size_t nbytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes into storage
  Shape shape;
  DType dtype = DType::kF32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;         // which output of grad_fn this tensor is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  static Tensor empty(const Shape& shape, DType dtype = DType::kF32, Device device = Device::cpu());
  // Host memory, page-locked when a CUDA GPU is present (plain host memory otherwise).
  static Tensor empty_pinned(const Shape& shape, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype = DType::kF32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::kF32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kF32,
                     Device device = Device::cpu());
  // Standard normal / uniform [lo, hi) samples from a counter-based generator (core/rng.h).
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::kF32,
                      Device device = Device::cpu());
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen,
                        DType dtype = DType::kF32, Device device = Device::cpu());
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  int rank() const { return shape().rank(); }
  // Size of one dimension; negative axes count from the end (dim(-1) is channels in NHWC).
  int64_t dim(int axis) const { return shape()[shape().normalize_axis(axis)]; }
  int64_t numel() const { return shape().numel(); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  void* raw_data() const {
    return static_cast<char*>(checked().storage->data()) + impl_->offset;
  }
  // Typed pointer (host or device memory, as the tensor's device says). Checks the dtype.
  template <class T>
  T* data() const {
    PMPL_ASSERT(dtype() == dtype_of<T>, "data<{}>() on a {} tensor", dtype_name(dtype_of<T>),
                dtype_name(dtype()));
    return static_cast<T*>(raw_data());
  }
  // Host copy of the elements (from any device).
  template <class T>
  std::vector<T> to_vector() const;
  // The single element of a one-element tensor, converted to double.
  double item() const;

  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  // Same data, cut from the graph: no grad_fn, requires_grad false.
  Tensor detach() const;
  // A tensor of `shape` starting `element_offset` elements into this one's data, sharing it.
  // Not recorded by autograd: used for flat parameter buffers and their gradient views.
  Tensor view_slice(int64_t element_offset, const Shape& shape) const;
  // Autograd-aware reshape (same element count); shares data.
  Tensor reshape(const Shape& shape) const;

  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  // Copies src's elements into this tensor (same shape; dtype converted; any devices).
  Tensor& copy_(const Tensor& src);

  // --- autograd ---
  bool requires_grad() const { return checked().requires_grad; }
  // Only leaves can be marked; tensors made by recorded ops require grad already.
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  uint32_t output_nr() const { return checked().output_nr; }
  Tensor grad() const { return Tensor(checked().grad); }
  // Installs `grad` as this tensor's gradient buffer; later backward passes accumulate into it
  // in place (how parameter gradients land in one flat buffer).
  void set_grad(const Tensor& grad) const;
  // Drops the gradient; with keep_buffer, zeroes it in place instead.
  void zero_grad(bool keep_buffer = true);
  // Runs backpropagation from this tensor. `grad` defaults to 1 for a one-element tensor.
  void backward(const Tensor& grad = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  TensorImpl& checked() const {
    PMPL_ASSERT(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

using Tensors = std::vector<Tensor>;

Tensor empty_like(const Tensor& x);
Tensor zeros_like(const Tensor& x);

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  PMPL_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
             "from_vector: {} values do not fill shape {}", values.size(), shape.str());
  Tensor host = empty(shape, dtype_of<T>, Device::cpu());
  std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(T));
  return device.is_cpu() ? host : host.to(device);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel());
}

}  // namespace pmpl
