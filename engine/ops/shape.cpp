// reshape (a view: tensors are contiguous), permute, channel shuffle, concat and split along any
// axis. These move bytes, so they work for every dtype, on the CPU or within a GPU (pitched device
// copies; the channel shuffle's kernel in cuda_kernels/elementwise.cu).
#include <cstring>

#include "engine/cuda_runtime.h"
#include "core/kernels/indexing.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#endif

namespace pmpl::ops {
namespace {

// [outer, axis, inner] view of a shape around `axis`, in elements.
void outer_inner(const Shape& s, int axis, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (int i = axis + 1; i < s.rank(); ++i) inner *= s[i];
}

// `outer` rows of `row` bytes from src (rows `src_pitch` apart) to dst (rows `dst_pitch` apart),
// on the CPU or within one GPU.
void copy_rows(Device device, char* dst, size_t dst_pitch, const char* src, size_t src_pitch, size_t row,
               int64_t outer) {
  if (device.is_cuda()) {
    cuda::copy_rows_device(dst, dst_pitch, src, src_pitch, row, static_cast<size_t>(outer));
    return;
  }
#pragma omp parallel for if (outer * static_cast<int64_t>(row) > (1 << 20))
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + static_cast<size_t>(o) * dst_pitch, src + static_cast<size_t>(o) * src_pitch, row);
  }
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  PMPL_CHECK(shape.numel() == x.numel(), "reshape: cannot view shape {} ({} elements) as {}",
             x.shape().str(), x.numel(), shape.str());
  Tensor y = x.view_slice(0, shape);
  if (needs_grad({&x})) {
    record("reshape", {&x}, {y}, [in_shape = x.shape()](const Tensors& g) -> Tensors {
      return {g[0].reshape(in_shape)};
    });
  }
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  const int rank = x.rank();
  PMPL_CHECK(static_cast<int>(dims.size()) == rank, "permute: {} axes given for a tensor of rank {}",
             dims.size(), rank);
  std::vector<int> inverse(static_cast<size_t>(rank), -1);
  for (int i = 0; i < rank; ++i) {
    const int d = dims[static_cast<size_t>(i)];
    PMPL_CHECK(d >= 0 && d < rank && inverse[static_cast<size_t>(d)] < 0,
               "permute: {} is not a permutation of 0..{}", fmt::join(dims, ","), rank - 1);
    inverse[static_cast<size_t>(d)] = i;
  }
  if (x.is_cuda()) {  // rare on a GPU (layout changes of inputs and weights): through the host
    Tensor y = permute(x.detach().to(Device::cpu()), dims).to(x.device());
    if (needs_grad({&x})) {
      record("permute", {&x}, {y}, [inverse](const Tensors& g) -> Tensors { return {permute(g[0], inverse)}; });
    }
    return y;
  }
  // Walk the output in order; the input index advances by the permuted strides.
  std::vector<int64_t> out_dims(static_cast<size_t>(rank)), in_strides(static_cast<size_t>(rank));
  int64_t stride = 1;
  std::vector<int64_t> strides(static_cast<size_t>(rank));
  for (int i = rank - 1; i >= 0; --i) {
    strides[static_cast<size_t>(i)] = stride;
    stride *= x.shape()[i];
  }
  for (int i = 0; i < rank; ++i) {
    out_dims[static_cast<size_t>(i)] = x.shape()[dims[static_cast<size_t>(i)]];
    in_strides[static_cast<size_t>(i)] = strides[static_cast<size_t>(dims[static_cast<size_t>(i)])];
  }
  Tensor y = Tensor::empty(Shape(out_dims), x.dtype(), x.device());
  const size_t elem = dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  const int64_t n = x.numel();
  std::vector<int64_t> index(static_cast<size_t>(rank), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + static_cast<size_t>(i) * elem, src + static_cast<size_t>(offset) * elem, elem);
    for (int a = rank - 1; a >= 0; --a) {
      const auto u = static_cast<size_t>(a);
      offset += in_strides[u];
      if (++index[u] < out_dims[u]) break;
      offset -= in_strides[u] * out_dims[u];
      index[u] = 0;
    }
  }
  if (needs_grad({&x})) {
    record("permute", {&x}, {y}, [inverse](const Tensors& g) -> Tensors { return {permute(g[0], inverse)}; });
  }
  return y;
}

Tensor channel_shuffle(const Tensor& x, int groups) {
  PMPL_CHECK(x.rank() >= 1, "channel_shuffle: a scalar has no channels");
  const int64_t c = x.dim(-1), n = x.numel();
  PMPL_CHECK(groups >= 1 && c % groups == 0, "channel_shuffle: {} groups do not divide {} channels", groups, c);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const size_t elem = dtype_size(x.dtype());
  PMPL_CHECK(elem == 2 || elem == 4 || elem == 8, "channel_shuffle: {} is not supported", dtype_name(x.dtype()));
  if (x.is_cuda()) {
#if PMPL_CUDA
    cuda::channel_shuffle(elem, x.raw_data(), y.raw_data(), n, c, groups);
#endif
  } else {
    const auto move = [&](auto tag) {
      using T = decltype(tag);
      const T* px = static_cast<const T*>(x.raw_data());
      T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for if (n > 65536)
      for (int64_t row = 0; row < n / c; ++row) {
        for (int64_t o = 0; o < c; ++o) py[row * c + o] = px[row * c + kernels::shuffle_source(o, c, groups)];
      }
    };
    if (elem == 2) move(uint16_t{});
    else if (elem == 4) move(uint32_t{});
    else move(uint64_t{});
  }
  if (needs_grad({&x})) {
    const int inverse = static_cast<int>(c / groups);
    record("channel_shuffle", {&x}, {y}, [inverse](const Tensors& g) -> Tensors { return {channel_shuffle(g[0], inverse)}; });
  }
  return y;
}

Tensor concat(const Tensors& xs, int axis_in) {
  PMPL_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  const int axis = first.shape().normalize_axis(axis_in);
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor& x : xs) {
    bool compatible = x.rank() == first.rank() && x.dtype() == first.dtype() && x.device() == first.device();
    for (int i = 0; compatible && i < x.rank(); ++i) {
      compatible = i == axis || x.shape()[i] == first.shape()[i];
    }
    PMPL_CHECK(compatible, "concat: {} {} on {} does not fit {} {} on {} along axis {}", x.shape().str(),
               dtype_name(x.dtype()), x.device().str(), first.shape().str(), dtype_name(first.dtype()),
               first.device().str(), axis);
    out_shape[axis] += x.shape()[axis];
  }
  Tensor y = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t outer, inner;
  outer_inner(out_shape, axis, outer, inner);
  const size_t elem = dtype_size(first.dtype());
  const size_t out_row = static_cast<size_t>(out_shape[axis] * inner) * elem;
  size_t column = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    const size_t row = static_cast<size_t>(x.shape()[axis] * inner) * elem;
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(y.raw_data()) + column;
    copy_rows(first.device(), dst, out_row, src, row, row, outer);
    column += row;
    sizes.push_back(x.shape()[axis]);
  }
  bool any_grad = false;
  for (const Tensor& x : xs) any_grad = any_grad || needs_grad({&x});
  if (any_grad) {
    std::vector<const Tensor*> inputs;
    for (const Tensor& x : xs) inputs.push_back(&x);
    record("concat", inputs, {y}, [sizes, axis](const Tensors& g) -> Tensors {
      return split(g[0], sizes, axis);
    });
  }
  return y;
}

Tensors split(const Tensor& x, const std::vector<int64_t>& sizes, int axis_in) {
  const int axis = x.shape().normalize_axis(axis_in);
  int64_t total = 0;
  for (int64_t s : sizes) {
    PMPL_CHECK(s >= 0, "split: negative size {}", s);
    total += s;
  }
  PMPL_CHECK(total == x.shape()[axis], "split: sizes add up to {}, but axis {} of {} has {}", total,
             axis, x.shape().str(), x.shape()[axis]);
  int64_t outer, inner;
  outer_inner(x.shape(), axis, outer, inner);
  const size_t elem = dtype_size(x.dtype());
  const size_t in_row = static_cast<size_t>(x.shape()[axis] * inner) * elem;
  Tensors ys;
  size_t column = 0;
  for (int64_t s : sizes) {
    Shape shape = x.shape();
    shape[axis] = s;
    Tensor y = Tensor::empty(shape, x.dtype(), x.device());
    const size_t row = static_cast<size_t>(s * inner) * elem;
    const char* src = static_cast<const char*>(x.raw_data()) + column;
    char* dst = static_cast<char*>(y.raw_data());
    copy_rows(x.device(), dst, row, src, in_row, row, outer);
    column += row;
    ys.push_back(y);
  }
  if (needs_grad({&x})) {
    record("split", {&x}, ys, [axis](const Tensors& g) -> Tensors { return {concat(g, axis)}; });
  }
  return ys;
}

}  // namespace pmpl::ops
