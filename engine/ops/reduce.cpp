// sum and mean over axes, and sum_to_shape (the backward of broadcasting). A run of adjacent
// reduced axes is viewed as [outer, reduced, inner] and summed with the deterministic column sums;
// non-adjacent runs are reduced one after another.
#include <algorithm>

#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {
namespace {

// Sums axes [first, last] of x (keeping them as size 1).
Tensor sum_block(const Tensor& x, int first, int last) {
  const Shape& s = x.shape();
  int64_t outer = 1, reduced = 1, inner = 1;
  for (int i = 0; i < first; ++i) outer *= s[i];
  for (int i = first; i <= last; ++i) reduced *= s[i];
  for (int i = last + 1; i < s.rank(); ++i) inner *= s[i];
  Shape out_shape = s;
  for (int i = first; i <= last; ++i) out_shape[i] = 1;
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
#if PMPL_CUDA
  if (x.is_cuda()) {
    if (outer == 1) {  // chunked column sums: parallel over rows as well as columns
      const Tensor sums = Tensor::empty(Shape{inner}, DType::kF64, x.device());
      const Tensor scratch = Tensor::empty(Shape{std::max<int64_t>(1, cuda::column_sums_scratch(reduced, inner))},
                                           DType::kF64, x.device());
      cuda::column_sums(x.dtype(), x.raw_data(), nullptr, reduced, inner, sums.data<double>(), nullptr,
                        scratch.data<double>());
      cuda::doubles_to(sums.data<double>(), 1.0, y.raw_data(), y.dtype(), inner);
    } else {
      const int64_t in5[5] = {1, 1, outer, reduced, inner}, out5[5] = {1, 1, outer, 1, inner};
      cuda::sum_to(x.dtype(), x.raw_data(), in5, y.raw_data(), out5);
    }
    return y;
  }
#endif
  dispatch_float(x.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const Tensor acc_buffer = detail::scratch<double>(outer * inner);
    double* acc = acc_buffer.data<double>();
    if (inner == 1) {  // contiguous runs (a sum over trailing axes, or over everything)
#pragma omp parallel for if (outer > 1 && outer * reduced > 65536)
      for (int64_t o = 0; o < outer; ++o) acc[o] = detail::contiguous_sum(px + o * reduced, reduced, outer == 1);
    } else {
#pragma omp parallel for if (outer > 1 && outer * reduced * inner > 65536)
      for (int64_t o = 0; o < outer; ++o) {
        detail::column_sums(px + o * reduced * inner, reduced, inner, acc + o * inner);
      }
    }
    for (int64_t i = 0; i < outer * inner; ++i) py[i] = static_cast<T>(acc[i]);
  });
  return y;
}

std::vector<int> normalized_axes(const Tensor& x, const std::vector<int>& axes) {
  std::vector<int> out;
  if (axes.empty()) {
    for (int i = 0; i < x.rank(); ++i) out.push_back(i);
    return out;
  }
  for (int a : axes) out.push_back(x.shape().normalize_axis(a));
  std::sort(out.begin(), out.end());
  PMPL_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), "sum: axis listed twice");
  return out;
}

Shape reduced_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
  std::vector<int64_t> dims;
  for (int i = 0; i < s.rank(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) dims.push_back(s[i]);
    else if (keepdim) dims.push_back(1);
  }
  return Shape(dims);
}

// Unrecorded sum over sorted, unique axes.
Tensor sum_raw(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  Tensor y = x;
  size_t end = axes.size();
  while (end > 0) {  // last run first, so earlier axis numbers stay valid
    size_t begin = end - 1;
    while (begin > 0 && axes[begin - 1] + 1 == axes[begin]) --begin;
    y = sum_block(y, axes[begin], axes[end - 1]);
    end = begin;
  }
  if (axes.empty()) y = x.clone();
  return y.detach().reshape(reduced_shape(x.shape(), axes, keepdim));
}

Tensor sum_impl(const char* name, const Tensor& x, const std::vector<int>& axes_in, bool keepdim,
                double factor) {
  detail::check_float(name, {&x});
  const std::vector<int> axes = normalized_axes(x, axes_in);
  Tensor y = sum_raw(x, axes, keepdim);
  if (factor != 1.0) y = scale(y, factor);
  if (needs_grad({&x})) {
    record(name, {&x}, {y},
           [in_shape = x.shape(), keep_shape = reduced_shape(x.shape(), axes, true),
            factor](const Tensors& g) -> Tensors {
             Tensor gx = detail::broadcast_to(g[0].reshape(keep_shape), in_shape);
             return {factor == 1.0 ? gx : scale(gx, factor)};
           });
  }
  return y;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return sum_impl("sum", x, axes, keepdim, 1.0);
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  int64_t count = 1;
  for (int a : normalized_axes(x, axes)) count *= x.shape()[a];
  PMPL_CHECK(count > 0, "mean over an empty set of elements (shape {})", x.shape().str());
  return sum_impl("mean", x, axes, keepdim, 1.0 / static_cast<double>(count));
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int lead = x.rank() - shape.rank();
  PMPL_ASSERT(lead >= 0, "sum_to_shape: {} has fewer dimensions than {}", x.shape().str(),
              shape.str());
  std::vector<int> axes;
  for (int i = 0; i < x.rank(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(i);
  }
  return sum(x, axes, true).reshape(shape);
}

}  // namespace pmpl::ops
