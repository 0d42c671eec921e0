// reshape (a view: tensors are contiguous), concat and split along any axis. These move bytes,
// so they work for every dtype.
#include <cstring>

#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

// [outer, axis, inner] view of a shape around `axis`, in elements.
void outer_inner(const Shape& s, int axis, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (int i = axis + 1; i < s.rank(); ++i) inner *= s[i];
}

void check_cpu(const char* op, const Tensor& x) {
  PMPL_CHECK(x.device().is_cpu(),
             "{}: this op has no CUDA kernel yet (issue 6); move the tensors to the CPU", op);
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

Tensor concat(const Tensors& xs, int axis_in) {
  PMPL_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  const int axis = first.shape().normalize_axis(axis_in);
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor& x : xs) {
    check_cpu("concat", x);
    bool compatible = x.rank() == first.rank() && x.dtype() == first.dtype();
    for (int i = 0; compatible && i < x.rank(); ++i) {
      compatible = i == axis || x.shape()[i] == first.shape()[i];
    }
    PMPL_CHECK(compatible, "concat: {} {} does not fit {} {} along axis {}", x.shape().str(),
               dtype_name(x.dtype()), first.shape().str(), dtype_name(first.dtype()), axis);
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
#pragma omp parallel for if (outer * static_cast<int64_t>(row) > (1 << 20))
    for (int64_t o = 0; o < outer; ++o) {
      std::memcpy(dst + static_cast<size_t>(o) * out_row, src + static_cast<size_t>(o) * row, row);
    }
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
  check_cpu("split", x);
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
#pragma omp parallel for if (outer * static_cast<int64_t>(row) > (1 << 20))
    for (int64_t o = 0; o < outer; ++o) {
      std::memcpy(dst + static_cast<size_t>(o) * row, src + static_cast<size_t>(o) * in_row, row);
    }
    column += row;
    ys.push_back(y);
  }
  if (needs_grad({&x})) {
    record("split", {&x}, ys, [axis](const Tensors& g) -> Tensors { return {concat(g, axis)}; });
  }
  return ys;
}

}  // namespace pmpl::ops
