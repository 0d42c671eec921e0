#include "engine/tensor.h"

#include <algorithm>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/cuda_runtime.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "core/rng.h"

#ifdef PMPL_CUDA
#include "cuda_kernels/convert.h"
#include "cuda_kernels/fill.h"
#endif

namespace pmpl {

Storage::Storage(size_t nbytes, Device device, bool pinned)
    : nbytes_(nbytes), device_(device), pinned_(pinned) {
  data_ = (pinned ? pinned_allocator() : allocator_for(device)).allocate(nbytes);
}

Storage::~Storage() { (pinned_ ? pinned_allocator() : allocator_for(device_)).deallocate(data_, nbytes_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  const bool pinned = cuda::device_count() > 0;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype),
                                            Device::cpu(), pinned);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return empty(shape, dtype, device).fill_(0.0);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return empty(shape, dtype, device).fill_(1.0);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  return empty(shape, dtype, device).fill_(value);
}

namespace {

// Samples are drawn on the host in f32 from the counter-based stream, so the same seed gives
// the same values whatever the dtype or device.
template <class Sample>
Tensor sampled(const Shape& shape, DType dtype, Device device, Sample sample) {
  Tensor host = Tensor::empty(shape, DType::kF32);
  float* p = host.data<float>();
  const int64_t n = shape.numel();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = sample(static_cast<uint64_t>(i));
  return host.to(dtype).to(device);
}

}  // namespace

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  const uint64_t seed = gen.seed(), offset = gen.take(static_cast<uint64_t>(shape.numel()));
  return sampled(shape, dtype, device,
                 [=](uint64_t i) { return philox_normal(seed, offset, i); });
}

Tensor Tensor::uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype,
                       Device device) {
  const uint64_t seed = gen.seed(), offset = gen.take(static_cast<uint64_t>(shape.numel()));
  const float a = static_cast<float>(lo), width = static_cast<float>(hi - lo);
  return sampled(shape, dtype, device,
                 [=](uint64_t i) { return a + width * philox_uniform(seed, offset, i); });
}

double Tensor::item() const {
  PMPL_CHECK(numel() == 1, "item() needs a tensor with one element, got shape {}", shape().str());
  const Tensor host = to(Device::cpu());
  return dispatch_all(dtype(), [&](auto tag) {
    using T = decltype(tag);
    return cast_value<double>(*host.data<T>());
  });
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), dtype(), target);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), target, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = checked().storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::view_slice(int64_t element_offset, const Shape& new_shape) const {
  const size_t elem = dtype_size(dtype());
  PMPL_ASSERT(element_offset >= 0 && element_offset + new_shape.numel() <= numel(),
              "view_slice [{}, +{}) outside a tensor of {} elements", element_offset,
              new_shape.numel(), numel());
  Tensor out = detach();
  out.impl_->offset += static_cast<size_t>(element_offset) * elem;
  out.impl_->shape = new_shape;
  return out;
}

Tensor Tensor::reshape(const Shape& new_shape) const { return ops::reshape(*this, new_shape); }

Tensor& Tensor::fill_(double value) {
  if (numel() == 0) return *this;
  if (device().is_cpu()) {
    dispatch_all(dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* p = data<T>();
      const T v = cast_value<T>(value);
      std::fill(p, p + numel(), v);
    });
    return *this;
  }
#ifdef PMPL_CUDA
  dispatch_all(dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = cast_value<T>(value);
    uint64_t pattern = 0;
    std::memcpy(&pattern, &v, sizeof(T));
    cuda::fill_pattern(raw_data(), static_cast<size_t>(numel()), sizeof(T), pattern);
  });
#else
  cuda::require_device(device().index);
#endif
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  PMPL_CHECK(src.shape() == shape(), "copy_: source shape {} differs from destination shape {}",
             src.shape().str(), shape().str());
  if (src.dtype() != dtype()) {
#ifdef PMPL_CUDA
    if (device().is_cuda() && src.device() == device()) {  // on the GPU, as the host would convert
      cuda::convert(src.raw_data(), src.dtype(), raw_data(), dtype(), numel());
      return *this;
    }
#endif
    // Other conversions run on the host; device tensors take a round trip through it.
    const Tensor host_src = src.to(Device::cpu());
    Tensor host_dst = device().is_cpu() ? *this : empty(shape(), dtype(), Device::cpu());
    dispatch_all(dtype(), [&](auto dst_tag) {
      using D = decltype(dst_tag);
      dispatch_all(src.dtype(), [&](auto src_tag) {
        using S = decltype(src_tag);
        const S* s = host_src.data<S>();
        D* d = host_dst.data<D>();
        const int64_t n = numel();
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; ++i) d[i] = cast_value<D>(s[i]);
      });
    });
    if (!device().is_cpu()) copy_(host_dst);
    return *this;
  }
  const size_t n = nbytes();
  if (n == 0 || raw_data() == src.raw_data()) return *this;
  if (device().is_cpu() && src.device().is_cpu()) {
    std::memcpy(raw_data(), src.raw_data(), n);
  } else if (device().is_cpu()) {
    cuda::copy_to_host(raw_data(), src.raw_data(), n);
  } else if (src.device().is_cpu()) {
    cuda::copy_to_device(raw_data(), src.raw_data(), n);
  } else {
    cuda::copy_device_to_device(raw_data(), src.raw_data(), n);
  }
  return *this;
}

Tensor& Tensor::set_requires_grad(bool on) {
  PMPL_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked (this one is the "
                        "output of {})", grad_fn() ? "an op" : "nothing");
  PMPL_CHECK(!on || is_floating(dtype()), "set_requires_grad: a {} tensor cannot have gradients",
             dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined()) {
    PMPL_CHECK(grad.shape() == shape() && grad.dtype() == dtype() && grad.device() == device(),
               "set_grad: gradient {} {} does not match tensor {} {}", grad.shape().str(),
               dtype_name(grad.dtype()), shape().str(), dtype_name(dtype()));
  }
  checked().grad = grad.impl_;
}

void Tensor::zero_grad(bool keep_buffer) {
  auto& g = checked().grad;
  if (!g) return;
  if (keep_buffer) {
    Tensor(g).zero_();
  } else {
    g.reset();
  }
}

void Tensor::backward(const Tensor& grad) const { run_backward(*this, grad); }

Tensor empty_like(const Tensor& x) { return Tensor::empty(x.shape(), x.dtype(), x.device()); }
Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype(), x.device()); }

}  // namespace pmpl
