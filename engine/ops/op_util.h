// Shared by the op files: argument checks with clear messages, and the few loops several ops
// need (deterministic per-channel sums).
#pragma once

#include <initializer_list>
#include <string_view>
#include <vector>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/tensor.h"

namespace pmpl::ops::detail {

// All defined tensors are CPU tensors of one floating dtype (the first one's).
void check_cpu_float(const char* op, std::initializer_list<const Tensor*> tensors);
// `x` has `rank` dimensions; `layout` names them for the message ("N, H, W, C").
void check_rank(const char* op, const char* what, const Tensor& x, int rank, const char* layout);
// Output size of a window op, with a clear error when the window does not fit.
int64_t window_output_size(const char* op, int64_t input, int kernel, int stride, int padding);

// out[c] = sum over rows of x[r * C + c], accumulated in double. Rows are cut into a fixed number
// of chunks that depends only on `rows`, so the result is the same for every thread count (the
// bit-exact resume promise relies on it).
template <class T>
void column_sums(const T* x, int64_t rows, int64_t channels, double* out);
// Both in one pass: sum_a[c] = sum over rows of a, dot_ab[c] = sum over rows of a * b
// (b = a gives the sum of squares).
template <class T>
void column_sum_and_dot(const T* a, const T* b, int64_t rows, int64_t channels, double* sum_a,
                        double* dot_ab);

// x repeated NumPy-style to `shape` (unrecorded; the forward of a broadcast's backward).
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// Shape of `x` with `rows` flattened: [rows, last dim]. For per-channel work on NHWC tensors.
inline int64_t rows_of(const Tensor& x) { return x.numel() / x.dim(-1); }

}  // namespace pmpl::ops::detail
